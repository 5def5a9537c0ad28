//! `convt` subcommands. Every subcommand that takes a call uses one grammar,
//! `OP NAME=VALUE ...`, parsed by [`convt::call::Args::parse_cli`].

mod demo;

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
    /// Walk through the seed's claims about conv2d_transpose with real computations.
    Demo,
}

/// Runs the command line; returns the process exit status (2 for a refused call).
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { call, out } => run(&call, &out),
        Command::Demo => demo::run(),
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
