//! Criterion benchmarks of the layer suite (`convt::bench::suite`), f32, on the current
//! rayon pool (set RAYON_NUM_THREADS=1 for one thread). Throughput is reported in useful
//! FLOPs (`Problem::flops`): read "Gelem/s" as GFLOP/s. Every transposed layer is also
//! timed in the other two directions of its problem (forward and filter gradient).

use convt::bench::{materialise, suite};
use convt::call;
use convt::problem::Direction;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn layers(c: &mut Criterion) {
    let mut group = c.benchmark_group("suite");
    group.sample_size(10);
    for layer in suite() {
        let args = materialise(layer.op, &layer.call_args(), false).expect("suite layer");
        let (p, direction) = call::problem(layer.op, &args).expect("suite layer");
        group.throughput(Throughput::Elements(p.flops() as u64));
        group.bench_function(layer.name, |b| {
            b.iter(|| call::run(layer.op, &args).unwrap())
        });
        if direction == Direction::BackwardData {
            let x = ndarray::Array4::<f32>::from_elem(p.input_shape(), 0.5);
            let w = ndarray::Array4::<f32>::from_elem(p.filter_shape(), 0.25);
            let dy = ndarray::Array4::<f32>::from_elem(p.output_shape(), 0.125);
            group.bench_function(format!("{}/forward", layer.name), |b| {
                b.iter(|| convt::conv::forward(&p, x.view(), w.view()).unwrap())
            });
            group.bench_function(format!("{}/filter-grad", layer.name), |b| {
                b.iter(|| convt::conv::backward_filter(&p, x.view(), dy.view()).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, layers);
criterion_main!(benches);
