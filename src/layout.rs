//! Data layouts and the permutations between them (all pure axis permutations: moving
//! weights between frameworks never flips a kernel).

use crate::element::Element;
use crate::error::{ConvError, Result};
use crate::kernels::transpose;
use ndarray::{Array4, ArrayView4, CowArray, Ix4};
use rayon::prelude::*;

/// Where the channel axis of a 4-D data tensor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataFormat {
    /// `[batch, height, width, channels]` (TensorFlow's default; convt's canonical layout).
    #[default]
    Nhwc,
    /// `[batch, channels, height, width]` (PyTorch, ONNX).
    Nchw,
}

impl DataFormat {
    /// Parses TensorFlow's `data_format` (`"NHWC"` or `"NCHW"`, case-sensitive).
    pub fn parse(arg: &str, text: &str) -> Result<DataFormat> {
        match text {
            "NHWC" => Ok(DataFormat::Nhwc),
            "NCHW" => Ok(DataFormat::Nchw),
            _ => Err(ConvError::UnknownValue {
                arg: arg.into(),
                got: text.into(),
                legal: "\"NHWC\", \"NCHW\"".into(),
            }),
        }
    }

    /// Indices of (batch, height, width, channels) in this layout.
    pub fn axes(self) -> [usize; 4] {
        match self {
            DataFormat::Nhwc => [0, 1, 2, 3],
            DataFormat::Nchw => [0, 2, 3, 1],
        }
    }

    /// A shape in this layout, reordered to `[batch, height, width, channels]`.
    pub fn to_nhwc_shape<D: Copy>(self, shape: &[D]) -> [D; 4] {
        self.axes().map(|a| shape[a])
    }

    /// An NHWC shape `[batch, height, width, channels]` reordered to this layout.
    pub fn from_nhwc_shape<D: Copy + Default>(self, nhwc: [D; 4]) -> [D; 4] {
        let mut shape = [D::default(); 4];
        for (i, a) in self.axes().into_iter().enumerate() {
            shape[a] = nhwc[i];
        }
        shape
    }

    /// A view of `data` (in this layout) as NHWC, without copying.
    pub fn view_as_nhwc<T>(self, data: ArrayView4<'_, T>) -> ArrayView4<'_, T> {
        match self {
            DataFormat::Nhwc => data,
            DataFormat::Nchw => data.permuted_axes([0, 2, 3, 1]),
        }
    }

    /// An NHWC array converted to this layout (standard memory order).
    pub fn from_nhwc<T: Element>(self, data: Array4<T>) -> Array4<T> {
        match self {
            DataFormat::Nhwc => data,
            DataFormat::Nchw => standard(data.view().permuted_axes([0, 3, 1, 2])).into_owned(),
        }
    }

    /// The layout's name as TensorFlow writes it.
    pub fn name(self) -> &'static str {
        match self {
            DataFormat::Nhwc => "NHWC",
            DataFormat::Nchw => "NCHW",
        }
    }
}

/// Destination rows (source columns) of one block of [`standard`]'s transposes.
const BLOCK: usize = 16;
/// Source rows of one block of [`standard`]'s transposes.
const SEGMENT: usize = 512;
/// Filters at least this large take [`standard`]'s two-transpose path (measured: ndarray's
/// copy is faster below, 1.5x slower at 256x256x3x3, 2x for FCN-32s' 1.8M-element filter).
const LARGE_FILTER_ELEMENTS: usize = 1 << 16;
/// Filters whose output channels lie a multiple of this many elements (2 KiB of f32)
/// apart take the two-transpose path at any size: an element-by-element copy then reads
/// addresses that share cache sets (DCGAN's 128x64x4x4: 0.35 -> 0.11 ms; 3x3 and most 2x2
/// filters copy faster element by element).
const ALIASED_FILTER_STRIDE: usize = 512;
/// Fewest elements one rayon task of [`standard`] copies.
const MIN_TASK_ELEMENTS: usize = 1 << 16;

/// `data` in standard (row-major) memory order, borrowed when it already is. An NCHW
/// array viewed as NHWC, or an NHWC one viewed as NCHW (how the PyTorch and ONNX fronts
/// reach convt's NHWC kernels), is a transpose per image, and an OIHW or IOHW filter
/// viewed as HWIO two transposes, copied by blocks that stay in cache, on all threads; any
/// other order is copied by ndarray, element by element.
///
/// ```
/// use convt::layout::standard;
/// let nchw = ndarray::Array4::from_shape_fn((2, 3, 4, 5), |(n, c, h, w)| (n * 1000 + c * 100 + h * 10 + w) as f32);
/// let nhwc = standard(nchw.view().permuted_axes([0, 2, 3, 1]));
/// assert!(nhwc.is_standard_layout());
/// assert_eq!(nhwc[[1, 2, 3, 0]], 1023.0);
/// ```
pub fn standard<T: Element>(data: ArrayView4<'_, T>) -> CowArray<'_, T, Ix4> {
    if data.is_standard_layout() {
        return CowArray::from(data);
    }
    // (Small filters copy faster element by element than in two passes, unless aliased.)
    let aliased = data
        .strides()
        .iter()
        .max()
        .is_some_and(|&s| (s as usize).is_multiple_of(ALIASED_FILTER_STRIDE));
    let large = data.len() >= LARGE_FILTER_ELEMENTS || aliased;
    if let (Some([h, w, a, b]), Some(source), true) =
        (filter_transpose(&data), data.as_slice_memory_order(), large)
    {
        // [B][A][H*W] -> [H*W][B][A] -> [H*W][A][B], two blocked transposes.
        let by_tap = transpose(source, b * a, h * w);
        let mut out = vec![T::zero(); source.len()];
        transpose_images(&by_tap, &mut out, b, a);
        if let Ok(array) = Array4::from_shape_vec(data.raw_dim(), out) {
            return CowArray::from(array);
        }
    }
    if let (Some((rows, cols)), Some(source)) =
        (image_transpose(&data), data.as_slice_memory_order())
    {
        let mut out = vec![T::zero(); source.len()];
        transpose_images(source, &mut out, rows, cols);
        if let Ok(array) = Array4::from_shape_vec(data.raw_dim(), out) {
            return CowArray::from(array);
        }
    }
    CowArray::from(data.as_standard_layout().into_owned())
}

/// For a view `[H][W][A][B]` of a standard `[B][A][H][W]` array (PyTorch's OIHW or IOHW
/// filters seen as HWIO): its shape.
fn filter_transpose<T>(data: &ArrayView4<'_, T>) -> Option<[usize; 4]> {
    let shape = [0, 1, 2, 3].map(|i| data.shape()[i]);
    let [h, w, a] = [shape[0], shape[1], shape[2]].map(|d| d as isize);
    (data.strides() == [w, 1, h * w, a * h * w]).then_some(shape)
}

/// For a view whose memory holds, per image, the transpose of its own order (NCHW seen as
/// NHWC, or NHWC seen as NCHW): the memory's `(rows, cols)` per image.
fn image_transpose<T>(data: &ArrayView4<'_, T>) -> Option<(usize, usize)> {
    let [_, d1, d2, d3] = [0, 1, 2, 3].map(|a| data.shape()[a]);
    let image = (d1 * d2 * d3) as isize;
    let strides = data.strides();
    let [d1i, d2i, d3i] = [d1, d2, d3].map(|d| d as isize);
    if strides == [image, d2i, 1, d1i * d2i] {
        Some((d3, d1 * d2))
    } else if strides == [image, 1, d3i * d1i, d1i] {
        Some((d2 * d3, d1))
    } else {
        None
    }
}

/// The transpose (`cols x rows`, row-major) of the row-major `rows x cols` matrix `source`.
pub(crate) fn transpose<T: Element>(source: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut out = vec![T::zero(); rows * cols];
    transpose_images(&source[..rows * cols], &mut out, rows, cols);
    out
}

/// `out` (per image `cols x rows`) = the transpose of `source` (per image `rows x cols`).
fn transpose_images<T: Element>(source: &[T], out: &mut [T], rows: usize, cols: usize) {
    let image = rows * cols;
    if image == 0 {
        return;
    }
    // Small images (filters' per-tap blocks, small feature maps): whole images per task.
    if image < MIN_TASK_ELEMENTS {
        let images_per_task = MIN_TASK_ELEMENTS.div_ceil(image);
        out.par_chunks_mut(image * images_per_task)
            .zip(source.par_chunks(image * images_per_task))
            .for_each(|(out, source)| {
                // Whole images by 16 x 16 blocks (in registers for f32 on AVX-512), so
                // each destination row gets whole cache lines.
                for (out, source) in out.chunks_mut(image).zip(source.chunks(image)) {
                    transpose::strided(source, cols, (rows, cols), out, rows);
                }
            });
        return;
    }
    // Tasks: a band of BLOCK destination rows (source columns) times a segment of SEGMENT
    // source rows, each handed its pieces of the band's destination rows, so that long
    // thin images (few channels, many pixels) still split into many tasks.
    let mut tasks: Vec<(usize, usize, Vec<&mut [T]>)> = Vec::new();
    for (n, image_out) in out.chunks_mut(image).enumerate() {
        let mut pieces: Vec<_> = image_out
            .chunks_mut(rows)
            .map(|row| row.chunks_mut(SEGMENT))
            .collect();
        for c0 in (0..cols).step_by(BLOCK) {
            for r0 in (0..rows).step_by(SEGMENT) {
                let band = pieces[c0..(c0 + BLOCK).min(cols)]
                    .iter_mut()
                    .filter_map(Iterator::next)
                    .collect();
                tasks.push((n * image + c0, r0, band));
            }
        }
    }
    let per_task = BLOCK * SEGMENT;
    tasks
        .into_par_iter()
        .with_min_len((MIN_TASK_ELEMENTS / per_task).max(1))
        .for_each(|(start, r0, mut band)| {
            let (n, c0) = (start / image, start % image);
            let source = &source[n * image..][..image];
            // BLOCK x BLOCK tiles: source rows are read along their length, and each
            // destination piece gets whole cache lines at once (pieces a power of two apart
            // would otherwise evict each other's half-written lines).
            let count = band.first().map_or(0, |piece| piece.len());
            let source = &source[r0 * cols + c0..];
            transpose::into_lines(source, cols, count, &mut band, 0);
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`standard`] equals ndarray's element-by-element copy for every permutation of
    /// every shape tried (the two transposes and the fallback), sizes 1 included.
    #[test]
    fn standard_copies_every_permutation_exactly() {
        let mut permutations = Vec::new();
        for a in 0..4 {
            for b in 0..4 {
                for c in 0..4 {
                    for d in 0..4 {
                        let p = [a, b, c, d];
                        if (0..4).all(|i| p.contains(&i)) {
                            permutations.push(p);
                        }
                    }
                }
            }
        }
        let (mut transposed, mut filters) = (0, 0);
        for shape in [
            (2, 3, 4, 5),
            (1, 17, 33, 40),
            (3, 1, 5, 1),
            (2, 64, 8, 8),
            (24, 21, 33, 20),
        ] {
            let data = Array4::from_shape_fn(shape, |(n, c, h, w)| {
                (n * 1_000_000 + c * 10_000 + h * 100 + w) as f64
            });
            for &p in &permutations {
                let view = data.view().permuted_axes(p);
                transposed += usize::from(image_transpose(&view).is_some());
                filters += usize::from(filter_transpose(&view).is_some());
                let fast = standard(view);
                assert!(fast.is_standard_layout());
                assert_eq!(fast, view.as_standard_layout(), "{shape:?} {p:?}");
            }
        }
        assert!(transposed >= 6, "the transposes ran {transposed} times");
        assert!(filters >= 3, "the filter views came {filters} times");
    }

    /// Shapes go to a layout and back unchanged, and NCHW puts channels second.
    #[test]
    fn shapes_round_trip() {
        for format in [DataFormat::Nhwc, DataFormat::Nchw] {
            let shape = format.from_nhwc_shape([2, 3, 4, 5]);
            assert_eq!(format.to_nhwc_shape(&shape), [2, 3, 4, 5]);
        }
        assert_eq!(DataFormat::Nchw.from_nhwc_shape([2, 3, 4, 5]), [2, 5, 3, 4]);
    }
}
