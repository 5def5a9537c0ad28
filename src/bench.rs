//! Timing: the benchmark suite of layers, timing of any call written in the `convt run`
//! grammar (with `NAME_shape=[...]` for random arrays), and the machine's GEMM peak
//! measured in the same run. `convt bench` and `benches/suite.rs` use it; tests never
//! time anything.

use crate::call::{self, Arg, Args, Tensor};
use crate::error::{ConvError, Result};
use ndarray::{ArrayD, IxDyn};
use serde_json::{json, Value};
use std::time::Instant;

/// One layer of the benchmark suite.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Short name (`T2-unet-up`).
    pub name: &'static str,
    /// What it is.
    pub description: &'static str,
    /// The op.
    pub op: &'static str,
    /// Its arguments (arrays as `NAME_shape`).
    pub args: Vec<(&'static str, Value)>,
}

/// The suite of the performance issue: U-Net, DCGAN, FCN transposed convolutions, 3x3
/// convolutions and a filter gradient (NHWC, f32); then `R*` layers with few channels on
/// one side (RGB input and output layers in all three directions), reported apart.
pub fn suite() -> Vec<Layer> {
    let t = |name,
             description,
             input: [usize; 4],
             k: usize,
             cout: usize,
             out: usize,
             s: usize,
             pad: Value| Layer {
        name,
        description,
        op: "tf.nn.conv2d_transpose",
        args: vec![
            ("input_shape", json!(input)),
            ("filters_shape", json!([k, k, cout, input[3]])),
            ("output_shape", json!([input[0], out, out, cout])),
            ("strides", json!(s)),
            ("padding", pad),
        ],
    };
    let pad1 = json!([[0, 0], [1, 1], [1, 1], [0, 0]]);
    vec![
        t(
            "T1-seed",
            "seed example 1x3x3x1 -> 6x6, k2 s2 SAME",
            [1, 3, 3, 1],
            2,
            1,
            6,
            2,
            json!("SAME"),
        ),
        t(
            "T2-unet-up",
            "U-Net up-conv 1x64x64x128 -> 64, k2 s2",
            [1, 64, 64, 128],
            2,
            64,
            128,
            2,
            json!("VALID"),
        ),
        t(
            "T3-unet-deep",
            "U-Net deep 1x32x32x256 -> 128, k2 s2",
            [1, 32, 32, 256],
            2,
            128,
            64,
            2,
            json!("VALID"),
        ),
        t(
            "T4-dcgan",
            "DCGAN 16x16x16x128 -> 64, k4 s2 pad 1",
            [16, 16, 16, 128],
            4,
            64,
            32,
            2,
            pad1.clone(),
        ),
        t(
            "T5-dcgan-rgb",
            "DCGAN to RGB 16x32x32x64 -> 3, k4 s2 pad 1",
            [16, 32, 32, 64],
            4,
            3,
            64,
            2,
            pad1.clone(),
        ),
        t(
            "T6-s1-3x3",
            "stride 1 1x56x56x64 -> 64, k3 SAME",
            [1, 56, 56, 64],
            3,
            64,
            56,
            1,
            json!("SAME"),
        ),
        t(
            "T7-fcn32",
            "FCN-32s 1x16x16x21 -> 21, k64 s32 pad 16",
            [1, 16, 16, 21],
            64,
            21,
            512,
            32,
            json!([[0, 0], [16, 16], [16, 16], [0, 0]]),
        ),
        Layer {
            name: "C1-conv3x3",
            description: "conv2d 3x3 1x56x56x64 -> 64 SAME",
            op: "tf.nn.conv2d",
            args: vec![
                ("input_shape", json!([1, 56, 56, 64])),
                ("filters_shape", json!([3, 3, 64, 64])),
                ("strides", json!(1)),
                ("padding", json!("SAME")),
            ],
        },
        Layer {
            name: "C2-conv3x3-b8",
            description: "conv2d 3x3 8x28x28x128 -> 128 SAME",
            op: "tf.nn.conv2d",
            args: vec![
                ("input_shape", json!([8, 28, 28, 128])),
                ("filters_shape", json!([3, 3, 128, 128])),
                ("strides", json!(1)),
                ("padding", json!("SAME")),
            ],
        },
        Layer {
            name: "F1-dcgan-dw",
            description: "filter gradient of T4",
            op: "tf.raw_ops.Conv2DBackpropFilter",
            args: vec![
                ("input_shape", json!([16, 32, 32, 64])),
                ("filter_sizes", json!([4, 4, 64, 128])),
                ("out_backprop_shape", json!([16, 16, 16, 128])),
                ("strides", json!([1, 2, 2, 1])),
                ("padding", json!("EXPLICIT")),
                ("explicit_paddings", json!([0, 0, 1, 1, 1, 1, 0, 0])),
            ],
        },
        Layer {
            name: "R1-rgb-in",
            description: "conv2d 3x3 1x224x224x3 -> 64 SAME (an RGB input layer)",
            op: "tf.nn.conv2d",
            args: vec![
                ("input_shape", json!([1, 224, 224, 3])),
                ("filters_shape", json!([3, 3, 3, 64])),
                ("strides", json!(1)),
                ("padding", json!("SAME")),
            ],
        },
        Layer {
            name: "R2-rgb-in-dw",
            description: "filter gradient of R1",
            op: "tf.raw_ops.Conv2DBackpropFilter",
            args: vec![
                ("input_shape", json!([1, 224, 224, 3])),
                ("filter_sizes", json!([3, 3, 3, 64])),
                ("out_backprop_shape", json!([1, 224, 224, 64])),
                ("strides", json!([1, 1, 1, 1])),
                ("padding", json!("SAME")),
            ],
        },
        Layer {
            name: "R3-rgb-out",
            description: "conv2d 3x3 4x64x64x64 -> 3 SAME (an RGB output layer)",
            op: "tf.nn.conv2d",
            args: vec![
                ("input_shape", json!([4, 64, 64, 64])),
                ("filters_shape", json!([3, 3, 64, 3])),
                ("strides", json!(1)),
                ("padding", json!("SAME")),
            ],
        },
        t(
            "R4-rgb-out-dx",
            "input gradient of R3 (3 -> 64, k3 s1 SAME)",
            [4, 64, 64, 3],
            3,
            64,
            64,
            1,
            json!("SAME"),
        ),
        Layer {
            name: "R5-rgb-out-dw",
            description: "filter gradient of R3",
            op: "tf.raw_ops.Conv2DBackpropFilter",
            args: vec![
                ("input_shape", json!([4, 64, 64, 64])),
                ("filter_sizes", json!([3, 3, 64, 3])),
                ("out_backprop_shape", json!([4, 64, 64, 3])),
                ("strides", json!([1, 1, 1, 1])),
                ("padding", json!("SAME")),
            ],
        },
    ]
}

impl Layer {
    /// The layer's arguments.
    pub fn call_args(&self) -> Args {
        let mut args = Args::new();
        for (name, v) in &self.args {
            args.insert(name, Arg::Json(v.clone()));
        }
        args
    }
}

/// A seeded xorshift64 stream: the repeatable pseudo-random data of the benchmarks, the
/// demo, the examples and the tests (not for anything that needs real randomness).
///
/// ```
/// let mut a = convt::bench::Xorshift::new(7);
/// let mut b = convt::bench::Xorshift::new(7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// ```
#[derive(Debug, Clone)]
pub struct Xorshift(u64);

impl Xorshift {
    /// The stream from `seed` (made odd, so that it is never the all-zero state).
    pub fn new(seed: u64) -> Xorshift {
        Xorshift(seed | 1)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Replaces every `NAME_shape=[...]` by a random array `NAME` of that shape (float32, or
/// float64 with `f64`), so that the call can run.
pub fn materialise(op: &str, args: &Args, f64: bool) -> Result<Args> {
    call::problem(op, args)?;
    let mut out = Args::new();
    let mut rng = Xorshift::new(0x9e3779b97f4a7c15);
    let arrays = call::array_names(op)?;
    for name in args.names() {
        let Some(base) = name.strip_suffix("_shape").filter(|b| arrays.contains(b)) else {
            out.insert(
                name,
                args.get(name).cloned().unwrap_or(Arg::Json(Value::Null)),
            );
            continue;
        };
        let shape = args.shape(base)?;
        let len = crate::problem::element_count(name, &shape)?;
        let values = (0..len).map(|_| (rng.next_u64() >> 40) as f64 / (1u64 << 24) as f64 - 0.5);
        out.insert(
            base,
            Arg::Tensor(if f64 {
                Tensor::F64(aligned(name, values, &shape)?)
            } else {
                Tensor::F32(aligned(name, values.map(|v| v as f32), &shape)?)
            }),
        );
    }
    Ok(out)
}

/// `values` as an array of `shape` whose first value lies on a 64-byte line, as the
/// peers' allocators place their tensors (PyTorch's, TensorFlow's and ONNX Runtime's
/// align to 64 bytes; the system allocator only to 16), so that a layer's timing does
/// not depend on where the layers before it left the heap (T5 ran 5-8% slower after T3
/// or T4 in one process than alone, its `dy` then off the cache lines; aligned, the gap
/// is smaller but not gone: the output is convt's own allocation).
fn aligned<T: Copy + Default>(
    arg: &str,
    values: impl ExactSizeIterator<Item = T>,
    shape: &[usize],
) -> Result<ArrayD<T>> {
    let len = values.len();
    let slack = 64 / std::mem::size_of::<T>().max(1);
    let mut room = Vec::new();
    room.try_reserve_exact(len.saturating_add(slack))
        .map_err(|_| ConvError::TooLarge {
            arg: arg.into(),
            message: format!("cannot allocate {len} elements"),
        })?;
    let lead = crate::kernels::lines::lead(room.as_ptr()).min(slack - 1);
    room.resize(lead, T::default());
    room.extend(values);
    let array = ndarray::Array1::from_vec(room).slice_move(ndarray::s![lead..]);
    array
        .into_shape_with_order(IxDyn(shape))
        .map_err(|e| ConvError::Shape {
            arg: arg.into(),
            message: e.to_string(),
        })
}

/// Median seconds of `f` over repeated runs after a warm-up (at least `min_runs` runs and
/// `min_seconds` in all).
pub fn median_seconds(mut f: impl FnMut(), min_runs: usize, min_seconds: f64) -> f64 {
    f();
    let mut times = vec![];
    let start = Instant::now();
    while times.len() < min_runs
        || (start.elapsed().as_secs_f64() < min_seconds && times.len() < 10_000)
    {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Runs `f` on a rayon pool of `threads` threads.
pub fn with_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> Result<R> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| ConvError::Argument {
            arg: "--threads".into(),
            message: e.to_string(),
        })?;
    Ok(pool.install(f))
}

/// One core's f32 FMA throughput as the `gemm` crate reaches it on a 1024^3 product, in
/// GFLOP/s (the "peak" the suite's percentages refer to).
pub fn gemm_peak_gflops() -> f64 {
    let n = 1024;
    let a = vec![1.0f32; n * n];
    let b = vec![0.5f32; n * n];
    let mut c = vec![0.0f32; n * n];
    let seconds = median_seconds(|| crate::kernels::matmul(&mut c, &a, &b, n, n, n), 5, 0.5);
    2.0 * (n * n * n) as f64 / seconds / 1e9
}

/// The process's peak resident memory so far in MiB (`VmHWM` of `/proc/self/status`;
/// `None` where that file does not exist).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// A timed call.
#[derive(Debug, Clone)]
pub struct Timing {
    /// Median milliseconds.
    pub ms: f64,
    /// Useful GFLOP/s (`Problem::flops` / time).
    pub gflops: f64,
}

/// Times `op(args)` (arrays may be `NAME_shape`) on `threads` threads.
pub fn time_call(
    op: &str,
    args: &Args,
    threads: usize,
    f64: bool,
    min_seconds: f64,
) -> Result<Timing> {
    let (p, _) = call::problem(op, args)?;
    let args = materialise(op, args, f64)?;
    call::run(op, &args)?;
    let seconds = with_threads(threads, || {
        median_seconds(|| drop(call::run(op, &args)), 5, min_seconds)
    })?;
    Ok(Timing {
        ms: seconds * 1e3,
        gflops: p.flops() / seconds / 1e9,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The arrays `convt bench` makes start on a 64-byte line and hold their values in
    /// order, whatever offset the allocator gives their room.
    #[test]
    fn benchmark_arrays_start_on_a_cache_line() {
        for len in [1usize, 5, 17, 1000] {
            let values: Vec<f32> = (0..len).map(|i| i as f32).collect();
            let array = aligned("x_shape", values.iter().copied(), &[len]).unwrap();
            assert_eq!(array.as_ptr() as usize % 64, 0, "{len} f32");
            assert_eq!(array.iter().copied().collect::<Vec<_>>(), values);
            let wide: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
            let array = aligned("x_shape", wide.iter().copied(), &[1, len]).unwrap();
            assert_eq!(array.as_ptr() as usize % 64, 0, "{len} f64");
            assert_eq!(array.shape(), &[1, len]);
            assert_eq!(array.iter().copied().collect::<Vec<_>>(), wide);
        }
        assert!(aligned("x_shape", [0.0f32; 6].into_iter(), &[4, 2]).is_err());
    }
}
