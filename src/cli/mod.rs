//! `convt` subcommands. Every subcommand that takes a call uses one grammar,
//! `OP NAME=VALUE ...`, parsed by [`convt::call::Args::parse_cli`].

/// `println!` that ends the program quietly when stdout is closed (e.g. piped to `head`).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        if writeln!(std::io::stdout().lock(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

mod demo;
mod upsample;

use clap::{Parser, Subcommand};
use convt::call::{self, Args};
use std::path::PathBuf;

/// convt: conv2d, its gradients and conv2d_transpose, exactly as the frameworks define them.
#[derive(Parser)]
#[command(name = "convt", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// An op and its keyword arguments, as in the framework's Python call.
#[derive(clap::Args)]
struct CallSpec {
    /// The op, e.g. tf.nn.conv2d_transpose, tf.nn.conv2d, tf.raw_ops.Conv2DBackpropInput,
    /// tf.raw_ops.Conv2DBackpropFilter.
    op: String,
    /// Keyword arguments NAME=VALUE: a VALUE ending in .npy is an array file; anything else
    /// is JSON (2, [1,2,2,1], [[0,0],[1,1],[1,1],[0,0]], "SAME") or a bare word (SAME).
    #[arg(value_name = "NAME=VALUE")]
    args: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run one op and write its result as .npy (in the inputs' dtype).
    ///
    /// Example: convt run tf.nn.conv2d_transpose input=a.npy filters=f.npy
    /// output_shape=[1,6,6,1] strides=[1,2,2,1] padding=SAME --out y.npy
    Run {
        #[command(flatten)]
        call: CallSpec,
        /// Where to write the result (.npy).
        #[arg(long)]
        out: PathBuf,
    },
    /// Explain what a call does: the forward convolution behind it, the size arithmetic per
    /// axis, the legal output sizes, the equivalent stride-1 conv2d, the call in other
    /// frameworks, the matrix and scatter views. Arrays are optional: give shapes instead
    /// (input_shape=[1,3,3,1]).
    ///
    /// Example: convt explain tf.nn.conv2d_transpose input=a.npy filters=f.npy
    /// output_shape=[1,6,6,1] strides=2 padding=SAME --svg a.svg --html a.html
    Explain {
        #[command(flatten)]
        call: CallSpec,
        /// Also draw the pictures as an SVG file.
        #[arg(long)]
        svg: Option<PathBuf>,
        /// Also write an interactive, self-contained HTML page.
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Time the benchmark suite (no OP), or one call in the `convt run` grammar with shapes
    /// in place of arrays: NAME_shape=[...] makes a random array for argument NAME.
    ///
    /// Example: convt bench tf.nn.conv2d_transpose input_shape=[1,64,64,128]
    /// filters_shape=[2,2,64,128] output_shape=[1,128,128,64] strides=2 padding=VALID
    /// --threads 1 --json
    Bench {
        /// The op (omit to time the whole suite).
        op: Option<String>,
        /// Keyword arguments NAME=VALUE, arrays as NAME_shape=[...].
        #[arg(value_name = "NAME=VALUE")]
        args: Vec<String>,
        /// Threads (default: 1, then all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// One machine-readable JSON line per measurement.
        #[arg(long)]
        json: bool,
        /// Time float64 instead of float32.
        #[arg(long)]
        f64: bool,
        /// Least seconds of repeated runs per measurement.
        #[arg(long, default_value_t = 0.5)]
        seconds: f64,
    },
    /// Print the same call in TensorFlow, PyTorch and ONNX (arrays may be given as shapes:
    /// input_shape=[1,4,4,8]).
    ///
    /// Example: convt translate tf.nn.conv2d_transpose input_shape=[1,4,4,8]
    /// filters_shape=[5,5,3,8] output_shape=[1,8,8,3] strides=2 padding=SAME
    Translate {
        #[command(flatten)]
        call: CallSpec,
    },
    /// Walk through the seed's claims about conv2d_transpose with real computations.
    Demo {
        #[command(subcommand)]
        which: Option<DemoKind>,
    },
}

/// The demos beyond the seed walk-through.
#[derive(Subcommand)]
enum DemoKind {
    /// Learn 2x upsampling with conv2d_transpose, beat bilinear on held-out images, and
    /// measure checkerboard artifacts.
    Upsample {
        /// Folder for the pictures.
        #[arg(long, default_value = "upsample-out")]
        out: PathBuf,
        /// Training steps of the main network.
        #[arg(long, default_value_t = 600)]
        steps: usize,
    },
}

/// Runs the command line; returns the process exit status (2 for a refused call).
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { call, out } => run(&call, &out),
        Command::Translate { call } => translate(&call),
        Command::Bench {
            op,
            args,
            threads,
            json,
            f64,
            seconds,
        } => bench(op.as_deref(), &args, threads, json, f64, seconds),
        Command::Explain { call, svg, html } => explain(&call, svg.as_deref(), html.as_deref()),
        Command::Demo { which: None } => demo::run(),
        Command::Demo {
            which: Some(DemoKind::Upsample { out, steps }),
        } => upsample::run(&out, steps),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

fn run(spec: &CallSpec, out: &std::path::Path) -> convt::Result<()> {
    let args = Args::parse_cli(&spec.args)?;
    let result = call::run(&spec.op, &args)?;
    result.write_npy(out)
}

fn translate(spec: &CallSpec) -> convt::Result<()> {
    let args = Args::parse_cli(&spec.args)?;
    for t in convt::translate::translate(&spec.op, &args)? {
        let framework = match t.op.split('.').next() {
            Some("tf") => "TensorFlow",
            Some("torch") => "PyTorch",
            _ => "ONNX",
        };
        let status = if t.note.is_some() {
            "not a single call"
        } else {
            "exact"
        };
        say!("{framework} ({status}):");
        for line in t.python().lines() {
            say!("    {line}");
        }
        if let Some(note) = &t.note {
            say!("  note: {note}");
        }
        say!("  convt run {}\n", t.convt_args());
    }
    Ok(())
}

fn write_file(path: &std::path::Path, text: &str) -> convt::Result<()> {
    std::fs::write(path, text).map_err(|e| convt::ConvError::File {
        file: path.display().to_string(),
        message: e.to_string(),
    })
}

fn explain(
    spec: &CallSpec,
    svg: Option<&std::path::Path>,
    html: Option<&std::path::Path>,
) -> convt::Result<()> {
    let args = Args::parse_cli(&spec.args)?;
    match convt::explain::explain(&spec.op, &args) {
        Ok(e) => {
            say!("{}", e.text());
            if let Some(path) = svg {
                write_file(path, &convt::explain::svg::render(&e)?)?;
                say!("wrote {}", path.display());
            }
            if let Some(path) = html {
                write_file(path, &convt::explain::html::page(&e)?)?;
                say!("wrote {}", path.display());
            }
            Ok(())
        }
        Err(error) => {
            say!("{}", convt::explain::refusal(&spec.op, &args, &error));
            Err(error)
        }
    }
}

fn bench(
    op: Option<&str>,
    items: &[String],
    threads: Option<usize>,
    json: bool,
    f64: bool,
    seconds: f64,
) -> convt::Result<()> {
    use convt::bench;
    let all = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let thread_counts: Vec<usize> = match threads {
        Some(t) => vec![t],
        None if all > 1 => vec![1, all],
        None => vec![1],
    };
    let peak = bench::gemm_peak_gflops();
    let calls: Vec<(String, String, Args)> = match op {
        Some(op) => vec![(op.to_string(), op.to_string(), Args::parse_cli(items)?)],
        None => bench::suite()
            .into_iter()
            .map(|l| (l.name.to_string(), l.op.to_string(), l.call_args()))
            .collect(),
    };
    if !json {
        say!("GEMM peak (gemm crate, f32 1024^3, one core): {peak:.1} GFLOP/s");
    }
    for &t in &thread_counts {
        if !json {
            say!(
                "\n{t} thread(s)\n  {:<16} {:>10} {:>10} {:>10} {:>13}",
                "layer",
                "ms",
                "GFLOP/s",
                "% of peak",
                "peak RSS MiB"
            );
        }
        for (name, op, args) in &calls {
            let timing = bench::time_call(op, args, t, f64, seconds)?;
            let percent = 100.0 * timing.gflops / (peak * t as f64);
            let rss = bench::peak_rss_mib();
            if json {
                let dtype = if f64 { "float64" } else { "float32" };
                say!(
                    "{}",
                    serde_json::json!({"layer": name, "op": op, "threads": t, "dtype": dtype, "ms": timing.ms, "gflops": timing.gflops,
                                       "peak_gflops": peak, "percent_of_peak": percent, "peak_rss_mib": rss})
                );
            } else {
                let rss = rss.map(|m| format!("{m:.0}")).unwrap_or_else(|| "?".into());
                say!(
                    "  {name:<16} {:>10.4} {:>10.1} {:>9.0}% {:>13}",
                    timing.ms,
                    timing.gflops,
                    percent,
                    rss
                );
            }
        }
    }
    Ok(())
}
