//! The floor: the least a tokio-based HTTP/1.1 proxy does per request, to
//! measure strait's request path against (PERFORMANCE.md, "The floor").
//! One current-thread runtime, a task per downstream connection, heads
//! parsed with httparse, upstream connections to 127.0.0.1:28080 (the
//! bench's service A) borrowed from a plain pool, the response read whole
//! (Content-Length only) and written back. No routing, policy, limits,
//! logs or metrics: not a proxy to use, a lower bound to compare with.
//!
//!   cargo build --release --manifest-path scripts/floor/Cargo.toml
//!   scripts/instructions.sh scripts/floor/target/release/floor h1 3000
//!
//! Accepts strait's `run` arguments; only `--listen ADDR` is read.
use std::cell::RefCell;
use std::rc::Rc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Pool = Rc<RefCell<Vec<(TcpStream, Vec<u8>)>>>;

fn head_end(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = b[i..].iter().position(|&c| c == b'\n') {
        let at = i + p;
        if at >= 3 && &b[at - 3..=at] == b"\r\n\r\n" {
            return Some(at + 1);
        }
        i = at + 1;
    }
    None
}

async fn conn(mut c: TcpStream, pool: Pool) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let mut out = Vec::with_capacity(4096);
    loop {
        let end = loop {
            if let Some(e) = head_end(&buf) {
                break e;
            }
            buf.reserve(4096);
            let n = c.read_buf(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
        };
        let mut hs = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut hs);
        req.parse(&buf[..end])
            .map_err(|_| std::io::ErrorKind::InvalidData)?;
        // upstream request: request line + headers copied
        out.clear();
        out.extend_from_slice(req.method.unwrap().as_bytes());
        out.push(b' ');
        out.extend_from_slice(req.path.unwrap().as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        for h in req.headers.iter() {
            out.extend_from_slice(h.name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        buf.drain(..end);
        let taken = pool.borrow_mut().pop();
        let (mut u, mut ubuf) = match taken {
            Some(x) => x,
            None => (
                TcpStream::connect(std::net::SocketAddr::from(([127, 0, 0, 1], 28080))).await?,
                Vec::with_capacity(8192),
            ),
        };
        u.set_nodelay(true)?;
        u.write_all(&out).await?;
        let (hend, clen) = loop {
            if let Some(e) = head_end(&ubuf) {
                let mut hs = [httparse::EMPTY_HEADER; 32];
                let mut resp = httparse::Response::new(&mut hs);
                resp.parse(&ubuf[..e])
                    .map_err(|_| std::io::ErrorKind::InvalidData)?;
                let cl = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
                    .unwrap_or(0);
                break (e, cl);
            }
            ubuf.reserve(8192);
            let n = u.read_buf(&mut ubuf).await?;
            if n == 0 {
                return Ok(());
            }
        };
        while ubuf.len() < hend + clen {
            ubuf.reserve(8192);
            let n = u.read_buf(&mut ubuf).await?;
            if n == 0 {
                return Ok(());
            }
        }
        c.write_all(&ubuf[..hend + clen]).await?;
        ubuf.drain(..hend + clen);
        pool.borrow_mut().push((u, ubuf));
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let args: Vec<String> = std::env::args().collect();
        let listen = args
            .iter()
            .position(|a| a == "--listen")
            .and_then(|i| args.get(i + 1))
            .map_or("127.0.0.1:28005", String::as_str);
        let l = TcpListener::bind(listen).await.unwrap();
        let pool: Pool = Rc::new(RefCell::new(Vec::new()));
        loop {
            let (c, _) = l.accept().await.unwrap();
            c.set_nodelay(true).unwrap();
            let p = pool.clone();
            tokio::task::spawn_local(async move {
                let _ = conn(c, p).await;
            });
        }
    });
}
