fn main() {
    println!("strait");
}
