//! The process allocator: the system's, except that very large blocks get a mapping of their
//! own on which transparent huge pages are requested.
//!
//! Why: each password hash (scrypt, N = 16384, r = 16) allocates a 32 MiB work buffer, fills
//! it once and reads it back in random order. From the system allocator that buffer is a
//! fresh mapping of 4 KiB pages: 8,192 page faults per hash and a TLB miss on nearly every
//! read. On 2 MiB pages it is 16 faults, and a hash takes about 70 % of the CPU time (the
//! README's Benchmarks section, on sign-in). The block is unmapped when freed, exactly as the
//! system allocator does with blocks this large, so memory between hashes does not change.
//!
//! Only blocks of at least [`LARGE`] take this path; nothing else in the service allocates
//! that much (request bodies and JSON are capped far below it). Where the kernel has
//! transparent huge pages off (`never`) or has no huge page free, the advice is ignored and
//! the block is ordinary pages: slower hashing, nothing else.
//!
//! This is the crate's only `unsafe` code (denied everywhere else): an allocator cannot be
//! written without it, and no allocator crate offers huge pages for large blocks alone.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::c_void;
use std::ptr;

use rustix::mm::{madvise, mmap_anonymous, munmap, Advice, MapFlags, ProtFlags};

/// Blocks at least this large are mapped on huge pages: scrypt's 32 MiB buffer, nothing else.
pub const LARGE: usize = 16 << 20;
/// The x86-64 and aarch64 (4 KiB base page) transparent huge page size.
const HUGE_PAGE: usize = 2 << 20;

/// The global allocator of the `sessiond` binary (see the module documentation).
pub struct Allocator;

/// A block of `size ≥ LARGE` bytes with alignment ≤ 2 MiB takes the huge-page path.
fn is_large(size: usize, align: usize) -> bool {
    size >= LARGE && align <= HUGE_PAGE
}

/// Maps `size` bytes, rounded up to whole huge pages, starting on a huge-page boundary, and
/// asks for huge pages there. Null when the address space is exhausted, as `alloc` requires.
fn map_large(size: usize) -> *mut u8 {
    let Some(len) = size.checked_next_multiple_of(HUGE_PAGE) else {
        return ptr::null_mut();
    };
    // One huge page more than needed, so that an aligned start lies inside the mapping.
    let Some(over) = len.checked_add(HUGE_PAGE) else {
        return ptr::null_mut();
    };
    // SAFETY: a new private anonymous mapping; it aliases nothing.
    let mapped = unsafe {
        mmap_anonymous(
            ptr::null_mut(),
            over,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )
    };
    let Ok(base) = mapped else {
        return ptr::null_mut();
    };
    let base = base as usize;
    let start = base.next_multiple_of(HUGE_PAGE);
    let head = start - base;
    let tail = over - head - len;
    // SAFETY: the head [base, start) and tail [start + len, base + over) lie inside the
    // mapping just made and outside the block handed out; both are whole 4 KiB pages,
    // since base, start and len are. A failed unmap only leaves unused address space.
    unsafe {
        if head > 0 {
            let _ = munmap(base as *mut c_void, head);
        }
        if tail > 0 {
            let _ = munmap((start + len) as *mut c_void, tail);
        }
        // Advice only: refused or unsupported, the block is ordinary pages.
        let _ = madvise(start as *mut c_void, len, Advice::LinuxHugepage);
    }
    start as *mut u8
}

/// Unmaps a block from [`map_large`].
///
/// # Safety
/// `block` came from `map_large(size)` and is not used afterwards.
unsafe fn unmap_large(block: *mut u8, size: usize) {
    let len = size.checked_next_multiple_of(HUGE_PAGE).unwrap_or(size);
    // SAFETY: by the caller's contract this is exactly the mapping map_large returned.
    let _ = unsafe { munmap(block.cast::<c_void>(), len) };
}

// SAFETY: small blocks are the system allocator's, unchanged. Large blocks are fresh
// mappings aligned to 2 MiB (≥ any alignment they are asked for), zero-filled by the kernel,
// and unmapped only by `dealloc`/`realloc` with the layout they were made with.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_large(layout.size(), layout.align()) {
            map_large(layout.size())
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc(layout) }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_large(layout.size(), layout.align()) {
            map_large(layout.size()) // a new anonymous mapping reads as zeros
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if is_large(layout.size(), layout.align()) {
            // SAFETY: a large layout was allocated by map_large with this size.
            unsafe { unmap_large(block, layout.size()) }
        } else {
            // SAFETY: a small layout was allocated by System.
            unsafe { System.dealloc(block, layout) }
        }
    }

    #[inline]
    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        if !is_large(layout.size(), align) && !is_large(new_size, align) {
            // SAFETY: both sizes are System's; forwarded with the caller's guarantees.
            return unsafe { System.realloc(block, layout, new_size) };
        }
        // Into, out of or within the large path: new block, copy, free the old one.
        // SAFETY: the caller guarantees new_size with this alignment is a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, align) };
        // SAFETY: new_size is non-zero, by realloc's contract.
        let moved = unsafe { self.alloc(new_layout) };
        if !moved.is_null() {
            // SAFETY: both blocks are live, distinct, and at least this long.
            unsafe {
                ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                self.dealloc(block, layout);
            }
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize) -> Layout {
        Layout::from_size_align(size, 64).unwrap()
    }

    /// The `THPeligible` line of the smaps entry that contains `addr`.
    fn thp_eligible(addr: usize) -> Option<bool> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((lo, hi)) = range.split_once('-') {
                    if let (Ok(lo), Ok(hi)) =
                        (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                    {
                        inside = (lo..hi).contains(&addr);
                        continue;
                    }
                }
            }
            if inside {
                if let Some(v) = line.strip_prefix("THPeligible:") {
                    return Some(v.trim() == "1");
                }
            }
        }
        None
    }

    #[test]
    fn large_blocks_are_zeroed_aligned_and_advised_for_huge_pages() {
        let a = Allocator;
        let l = layout(32 << 20);
        let block = unsafe { a.alloc_zeroed(l) };
        assert!(!block.is_null());
        assert_eq!(block as usize % HUGE_PAGE, 0, "starts on a huge page");
        let bytes = unsafe { std::slice::from_raw_parts_mut(block, l.size()) };
        assert!(bytes.iter().all(|b| *b == 0));
        bytes[l.size() - 1] = 7;
        // The advice takes unless the kernel has huge pages off altogether.
        let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        let thp_on = mode.contains("[always]") || mode.contains("[madvise]");
        assert_eq!(
            thp_eligible(block as usize),
            Some(thp_on),
            "THP mode {mode}"
        );
        unsafe { a.dealloc(block, l) };
        assert_eq!(thp_eligible(block as usize), None, "unmapped on free");
    }

    #[test]
    fn small_blocks_are_the_system_allocators() {
        let a = Allocator;
        let l = layout(4096);
        let block = unsafe { a.alloc(l) };
        assert!(!block.is_null());
        unsafe { block.write_bytes(1, l.size()) };
        unsafe { a.dealloc(block, l) };
        assert!(!is_large(LARGE - 1, 8));
        assert!(is_large(LARGE, 8));
        assert!(
            !is_large(LARGE, HUGE_PAGE * 2),
            "alignment past a huge page: System"
        );
    }

    #[test]
    fn realloc_keeps_the_bytes_across_the_threshold_both_ways() {
        let a = Allocator;
        let small = layout(1024);
        let block = unsafe { a.alloc(small) };
        let pattern: Vec<u8> = (0..1024).map(|i| (i % 251) as u8).collect();
        unsafe { ptr::copy_nonoverlapping(pattern.as_ptr(), block, 1024) };
        let grown = unsafe { a.realloc(block, small, LARGE + 5) };
        assert!(!grown.is_null());
        assert_eq!(grown as usize % HUGE_PAGE, 0);
        assert_eq!(
            unsafe { std::slice::from_raw_parts(grown, 1024) },
            &pattern[..]
        );
        let shrunk = unsafe { a.realloc(grown, layout(LARGE + 5), 512) };
        assert!(!shrunk.is_null());
        assert_eq!(
            unsafe { std::slice::from_raw_parts(shrunk, 512) },
            &pattern[..512]
        );
        unsafe { a.dealloc(shrunk, layout(512)) };
    }

    #[test]
    fn an_impossible_size_is_refused_with_null() {
        assert!(map_large(usize::MAX - 10).is_null());
        assert!(
            map_large(1 << 62).is_null(),
            "more address space than exists"
        );
    }
}
