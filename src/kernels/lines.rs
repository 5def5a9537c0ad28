//! Buffers whose values start on a 64-byte cache line, so that a kernel's whole-register
//! loads and stores each touch one line: `Vec<f32>` gives 16-byte alignment at best
//! (glibc puts a large block 16 bytes past a page), and every AVX-512 access of an
//! unaligned buffer then straddles two lines (T5's narrow Winograd engine, its scratch
//! buffers unaligned, was 5% slower).

/// How many values of `T` from `values` to the next 64-byte line (0 when on one, or
/// where no whole number of values reaches one).
pub(crate) fn lead<T>(values: *const T) -> usize {
    match values.align_offset(64) {
        usize::MAX => 0,
        lead => lead,
    }
}

/// `len` values of `T` starting on a 64-byte line: a vector grown by up to a line's
/// worth, viewed from its first line start. (Not `Clone`: a copy of the vector lies
/// elsewhere, and its lead would no longer put it on a line.)
#[derive(Debug, Default)]
pub(crate) struct Lines<T> {
    buffer: Vec<T>,
    lead: usize,
    len: usize,
}

impl<T: Copy + Default> Lines<T> {
    /// Values per cache line, less one: the most a view may start past its buffer's start.
    const SLACK: usize = 64 / std::mem::size_of::<T>() - 1;

    /// `len` zeros (`T::default()`).
    pub(crate) fn zeros(len: usize) -> Self {
        let mut lines = Self {
            buffer: Vec::new(),
            lead: 0,
            len: 0,
        };
        lines.resize(len);
        lines
    }

    /// Makes room for `len` values, reusing the allocation where it is large enough. The
    /// values are not kept in place (a reallocation may move the line start): callers
    /// write before they read.
    pub(crate) fn resize(&mut self, len: usize) {
        self.buffer.resize(len + Self::SLACK, T::default());
        self.lead = lead(self.buffer.as_ptr()).min(Self::SLACK);
        self.len = len;
    }

    /// The allocated values, lead and slack included.
    pub(crate) fn capacity(&self) -> usize {
        self.buffer.capacity()
    }
}

impl<T> std::ops::Deref for Lines<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.buffer[self.lead..][..self.len]
    }
}

impl<T> std::ops::DerefMut for Lines<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.buffer[self.lead..][..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::Lines;

    /// Every view starts on a line, holds its length, and is zeros where new.
    #[test]
    fn views_start_on_a_line() {
        let mut lines = Lines::<f32>::zeros(0);
        for len in [0, 1, 15, 16, 17, 1000, 3, 100_000] {
            lines.resize(len);
            assert_eq!(lines.len(), len);
            assert_eq!(lines.as_ptr() as usize % 64, 0, "len {len}");
        }
        let doubles = Lines::<f64>::zeros(33);
        assert_eq!((doubles.len(), doubles.as_ptr() as usize % 64), (33, 0));
        assert!(doubles.iter().all(|&v| v == 0.0));
    }
}
