//! The process's allocator: mimalloc, asked for plain `mi_malloc` blocks
//! whenever those already satisfy the alignment.
//!
//! The `mimalloc` crate's allocator sends every request through
//! `mi_malloc_aligned`, whose fast path only serves sizes up to 1 KiB; above
//! that, mimalloc 3 over-allocates and offsets the block unless its size
//! class is a power of two, even for an alignment of 8. A request's future
//! and a connection's buffers are such sizes: measured, four allocations per
//! proxied HTTP/1.1 request took that path (~600 instructions per request).

// The one module with `unsafe`: a `GlobalAlloc` cannot be written without
// it. Each use says why it is sound.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as ffi;

/// Every mimalloc block is aligned to at least a machine word: block sizes
/// are multiples of it and a page's first block is aligned to 16
/// (`MI_PAGE_MIN_START_BLOCK_ALIGN`, `MI_INTPTR_SIZE` in mimalloc's
/// `types.h`).
const WORD: usize = std::mem::size_of::<usize>();

/// mimalloc, with word-aligned requests served by `mi_malloc`.
pub struct Allocator;

// SAFETY: each method returns memory from mimalloc, which owns it until
// `mi_free`; `mi_malloc`, `mi_zalloc` and `mi_realloc` return blocks aligned
// to at least `WORD` (see above), so a layout whose alignment is at most
// `WORD` is satisfied by them, and larger alignments go to mimalloc's
// aligned functions, as the `mimalloc` crate does for all. `mi_free` frees
// blocks from either family. A null return on exhaustion is what
// `GlobalAlloc` expects.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc's allocation functions accept any size and a
        // power-of-two alignment, which `Layout` guarantees.
        unsafe {
            if layout.align() <= WORD {
                ffi::mi_malloc(layout.size()) as *mut u8
            } else {
                ffi::mi_malloc_aligned(layout.size(), layout.align()) as *mut u8
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe {
            if layout.align() <= WORD {
                ffi::mi_zalloc(layout.size()) as *mut u8
            } else {
                ffi::mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (GlobalAlloc's contract),
        // so from mimalloc.
        unsafe { ffi::mi_free(ptr as *mut c_void) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`'s alignment
        // (GlobalAlloc's contract); the new block keeps that alignment.
        unsafe {
            if layout.align() <= WORD {
                ffi::mi_realloc(ptr as *mut c_void, new_size) as *mut u8
            } else {
                ffi::mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8
            }
        }
    }
}

#[cfg(test)]
mod tests;
