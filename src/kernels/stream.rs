//! Copies with non-temporal (streaming) stores, for outputs far larger than the caches:
//! a plain store first reads the destination line into the cache (and evicts something
//! useful); a streaming store writes the line to memory directly.

/// Outputs at least this large are written with streaming stores where a plan can.
pub(crate) const STREAM_MIN_BYTES: usize = 16 << 20;

/// Whether this CPU takes [`copy`]'s streaming path.
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::simd::avx512()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `dst.copy_from_slice(src)`, the 64-byte-aligned middle with streaming stores when
/// [`available`]. Call [`fence`] before other threads read `dst`.
pub(crate) fn copy<T: Copy>(dst: &mut [T], src: &[T]) {
    assert_eq!(dst.len(), src.len());
    let size = std::mem::size_of::<T>();
    #[cfg(target_arch = "x86_64")]
    if available() && size > 0 && 64 % size == 0 {
        // Elements before the first 64-byte boundary, then whole 64-byte lines.
        let head = super::lines::lead(dst.as_ptr()).min(dst.len());
        let per_line = 64 / size;
        let lines = (dst.len() - head) / per_line;
        let (first, rest) = dst.split_at_mut(head);
        first.copy_from_slice(&src[..head]);
        let (middle, last) = rest.split_at_mut(lines * per_line);
        // SAFETY: the CPU has AVX-512F (`available`); `middle` starts on a 64-byte boundary
        // (T's alignment divides 64, so stepping `head` elements reaches it) and holds
        // `lines` whole lines, as does the source range read; `T: Copy`, so copying its
        // bytes is a valid copy of the values.
        unsafe {
            stream_lines(
                middle.as_mut_ptr().cast(),
                src[head..].as_ptr().cast(),
                lines,
            )
        };
        last.copy_from_slice(&src[head + lines * per_line..]);
        return;
    }
    dst.copy_from_slice(src);
}

/// Orders the streaming stores before what follows (other threads may then read them).
pub(crate) fn fence() {
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: `sfence` only orders stores; SSE is part of every x86-64 CPU.
        unsafe { std::arch::x86_64::_mm_sfence() };
    }
}

/// Copies `lines` 64-byte lines from `src` (any alignment) to `dst` (64-byte aligned).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn stream_lines(dst: *mut u8, src: *const u8, lines: usize) {
    use std::arch::x86_64::{_mm512_loadu_si512, _mm512_stream_si512};
    for line in 0..lines {
        // SAFETY: the caller guarantees `lines` lines at both pointers and `dst`'s
        // alignment, which `_mm512_stream_si512` requires.
        unsafe {
            let value = _mm512_loadu_si512(src.add(64 * line).cast());
            _mm512_stream_si512(dst.add(64 * line).cast(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every length and alignment of destination and source copies exactly.
    #[test]
    fn copies_any_length_and_alignment() {
        let source: Vec<f32> = (0..300).map(|i| i as f32 * 0.5 - 7.0).collect();
        for len in [0, 1, 15, 16, 17, 31, 64, 100, 257] {
            for dst_offset in 0..17 {
                for src_offset in [0, 3, 16] {
                    let mut buffer = vec![f32::NAN; 320];
                    let src = &source[src_offset..src_offset + len];
                    super::copy(&mut buffer[dst_offset..dst_offset + len], src);
                    super::fence();
                    assert_eq!(&buffer[dst_offset..dst_offset + len], src);
                    assert!(buffer[..dst_offset].iter().all(|v| v.is_nan()));
                    assert!(buffer[dst_offset + len..].iter().all(|v| v.is_nan()));
                }
            }
        }
        let wide: Vec<f64> = (0..99).map(f64::from).collect();
        let mut out = vec![0.0; 100];
        super::copy(&mut out[1..], &wide);
        super::fence();
        assert_eq!(&out[1..], &wide[..]);
    }
}
