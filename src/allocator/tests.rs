use super::*;

/// Sizes across mimalloc's classes: tiny, small, the 1 KiB fast-path edge,
/// the sizes of a request's futures and buffers, and a huge block.
const SIZES: [usize; 10] = [1, 8, 24, 1000, 1025, 2088, 7088, 8192, 70_000, 5 << 20];

#[test]
fn every_block_has_its_layouts_alignment_and_keeps_its_bytes() {
    let a = Allocator;
    for size in SIZES {
        for align in [1, 2, 4, 8, 16, 64, 128, 4096] {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: a non-zero-sized layout; the block is written within
            // its size, reallocated with the layout it was allocated with,
            // and freed once.
            unsafe {
                let p = a.alloc(layout);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "size {size} align {align}");
                p.write_bytes(0xa5, size);
                let grown = size * 2 + 3;
                let q = a.realloc(p, layout, grown);
                assert!(!q.is_null());
                assert_eq!(q as usize % align, 0, "realloc size {size} align {align}");
                assert!(
                    (0..size).all(|i| *q.add(i) == 0xa5),
                    "realloc kept the bytes"
                );
                a.dealloc(q, Layout::from_size_align(grown, align).unwrap());
            }
        }
    }
}

#[test]
fn zeroed_blocks_are_zero_even_after_reuse() {
    let a = Allocator;
    for size in SIZES {
        for align in [8, 32] {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: as above.
            unsafe {
                let dirty = a.alloc(layout);
                dirty.write_bytes(0xff, size);
                a.dealloc(dirty, layout);
                let p = a.alloc_zeroed(layout);
                assert_eq!(p as usize % align, 0);
                assert!(
                    (0..size).all(|i| *p.add(i) == 0),
                    "size {size} align {align}"
                );
                a.dealloc(p, layout);
            }
        }
    }
}
