//! `mognet-infer bench`: the fast integer engine's speed on one model, and with `--compare` the
//! same model in the scalar reference, Burn's Flex float eval and tract (its ONNX export), on the
//! same images; `--onnx-dir` writes the exports for other runtimes (scripts/bench-inference.sh
//! times ONNX Runtime on them).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use burn::tensor::Device;
use clap::ValueEnum;
use mognet_core::fold::fold;
use mognet_core::persist::{RunWeights, load_run_model};
use mognet_infer::IntModel;
use mognet_infer::fast::{FastModel, Variant};
use mognet_infer::onnx::OnnxExport;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum VariantArg {
    /// AVX-512 with VNNI for the 1x1 convolutions on codes.
    Avx512Vnni,
    /// AVX-512.
    Avx512,
    /// AVX2.
    Avx2,
    /// No explicit SIMD target.
    Portable,
}

impl From<VariantArg> for Variant {
    fn from(v: VariantArg) -> Self {
        match v {
            VariantArg::Avx512Vnni => Variant::Avx512Vnni,
            VariantArg::Avx512 => Variant::Avx512,
            VariantArg::Avx2 => Variant::Avx2,
            VariantArg::Portable => Variant::Portable,
        }
    }
}

/// What `bench` times and how.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// A model file.
    #[arg(long, conflicts_with_all = ["preset", "run"])]
    pub model: Option<PathBuf>,
    /// A freshly initialised preset (folded from Burn), when no model file is given.
    #[arg(long, conflicts_with = "run")]
    pub preset: Option<mognet_core::Preset>,
    /// A trained run (its best weights, folded).
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// Input channels of a preset.
    #[arg(long, default_value_t = 1)]
    pub in_channels: usize,
    /// Classes of a preset.
    #[arg(long, default_value_t = 10)]
    pub num_classes: usize,
    /// A preset with BN + QReLU after each grouped convolution (`inner_norm`).
    #[arg(long, requires = "preset")]
    pub inner_norm: bool,
    /// Images per batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Timed rounds (median reported).
    #[arg(long, default_value_t = 7)]
    pub rounds: usize,
    /// Kernel variant (default: the fastest this CPU runs).
    #[arg(long, value_enum)]
    pub variant: Option<VariantArg>,
    /// Also time the scalar reference, the Burn Flex float eval and tract on the model's ONNX
    /// export.
    #[arg(long)]
    pub compare: bool,
    /// Write the model's ONNX exports into this folder: `exact.onnx`, `qdq.onnx` (int8 scales
    /// calibrated on the benchmark's images) and, when the float weights are known (--run or
    /// --preset), `float.onnx`.
    #[arg(long)]
    pub onnx_dir: Option<PathBuf>,
}

impl BenchArgs {
    fn source(&self) -> Result<Source> {
        Ok(match (&self.model, self.preset, &self.run) {
            (Some(m), _, _) => Source::File(m.clone()),
            (_, _, Some(r)) => Source::Run(r.clone()),
            (_, Some(p), _) => {
                Source::Preset(p, self.in_channels, self.num_classes, self.inner_norm)
            }
            _ => bail!("give --model, --run or --preset"),
        })
    }
}

enum Source {
    File(PathBuf),
    Run(PathBuf),
    Preset(mognet_core::Preset, usize, usize, bool),
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

/// Median images/s of `rounds` timed calls of `run`, each classifying `images` images.
fn median_rate(rounds: usize, images: usize, mut run: impl FnMut()) -> f64 {
    median(
        (0..rounds)
            .map(|_| {
                let t = std::time::Instant::now();
                run();
                images as f64 / t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

/// The integer model to benchmark, the float model it came from (when there is one), and a name.
fn bench_model(
    source: Source,
    device: &Device,
) -> Result<(IntModel, Option<mognet_core::Mognet>, String)> {
    Ok(match source {
        Source::File(path) => (IntModel::load(&path)?.0, None, path.display().to_string()),
        Source::Run(run) => {
            let (config, m) = load_run_model(&run, RunWeights::Best, device)?;
            (fold(&m, &config)?.0, Some(m), run.display().to_string())
        }
        Source::Preset(p, c, k, inner_norm) => {
            let config = mognet_core::MognetConfig::preset(p, c, k).with_inner_norm(inner_norm);
            let m = config.init(device)?;
            let inner = if inner_norm { ", inner_norm" } else { "" };
            (
                fold(&m, &config)?.0,
                Some(m),
                format!("{p} (fresh, {c} channel(s), {k} classes{inner})"),
            )
        }
    })
}

/// The per-layer-kind time shares and the rooflines, after the timed run reached `rate`.
fn print_profile(fast: &FastModel, images: &[u8], variant: Variant, rate: f64, threads: usize) {
    let macs = fast.macs() as f64;
    let mut scratch = fast.scratch();
    let mut profile = mognet_infer::fast::Profile::default();
    for img in images.chunks_exact(fast.image_len()) {
        // The images were made at the model's size (chunks_exact of its length).
        let _ = fast.predict_profiled(img, &mut scratch, variant, Some(&mut profile));
    }
    let total: f64 = profile.0.iter().sum();
    let shares: Vec<String> = mognet_infer::fast::KINDS
        .iter()
        .zip(profile.0)
        .map(|(k, t)| format!("{k} {:.1}%", 100.0 * t / total.max(1e-12)))
        .collect();
    println!("time per layer kind (1 thread): {}", shares.join(", "));
    let peak = mognet_infer::fast::peak::measure(variant);
    let achieved_per_thread = rate * macs / threads as f64;
    println!(
        "roofline ({} i32 vector adds, one per ternary MAC): peak {:.1} G adds/s per thread measured; reached {:.1}%",
        variant.name(),
        peak.i32_adds / 1e9,
        100.0 * achieved_per_thread / peak.i32_adds
    );
    if let Some(v) = peak.int8_macs {
        println!(
            "int8 roofline (AVX-512 VNNI vpdpbusd): peak {:.1} G MAC/s per thread measured; reached {:.1}%",
            v / 1e9,
            100.0 * achieved_per_thread / v
        );
    }
}

/// Images/s of the scalar reference engine on the first (at most 16) images.
fn scalar_rate(model: &IntModel, images: &[u8], batch: usize, threads: usize) -> (usize, f64) {
    let len = model.image_len();
    let n = batch.min(16);
    let rate = median_rate(3, n, || {
        std::thread::scope(|s| {
            let per = n.div_ceil(threads.max(1));
            for part in images[..n * len].chunks(per * len) {
                s.spawn(move || {
                    part.chunks_exact(len)
                        .filter_map(|img| model.predict(img).ok().map(|p| p.class))
                        .sum::<usize>()
                });
            }
        });
    });
    (n, rate)
}

/// Images/s of Burn's Flex backend evaluating the float model on the same images.
fn flex_rate(
    m: &mognet_core::Mognet,
    spec: &mognet_core::NetSpec,
    images: &[u8],
    batch: usize,
    threads: usize,
    device: &Device,
) -> Result<f64> {
    let m = burn::module::Module::valid(m);
    let [h, w] = spec.input_size;
    let x: Vec<f32> = images.iter().map(|&p| p as f32 / 255.0).collect();
    let x = burn::tensor::Tensor::<4>::from_data(
        burn::tensor::TensorData::new(x, [batch, spec.in_channels, h, w]),
        device,
    );
    // Flex parallelises on the current rayon pool: give it the same thread count.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .context("starting the thread pool for the Flex eval")?;
    Ok(pool.install(|| {
        let _ = m.forward(x.clone()).into_data();
        median_rate(3, batch, || {
            let _ = m.forward(x.clone()).into_data();
        })
    }))
}

/// The variant asked for, or the best this CPU runs; an error when the CPU lacks it.
fn bench_variant(variant: Option<Variant>) -> Result<Variant> {
    let available = Variant::available();
    let variant = variant.unwrap_or_else(Variant::detect);
    if !variant.is_available() {
        bail!(
            "variant {} is not available on this CPU (available: {:?})",
            variant.name(),
            available
        );
    }
    let names: Vec<_> = available.iter().map(|v| v.name()).collect();
    println!(
        "kernels: {} (available: {})",
        variant.name(),
        names.join(", ")
    );
    Ok(variant)
}

/// The largest batch `bench` takes: its images are held in memory at once.
const MAX_BENCH_BATCH: usize = 65_536;

/// The flags' ranges; an error naming the first flag out of its range.
fn check_limits(args: &BenchArgs) -> Result<()> {
    for (flag, value, max) in [
        ("--batch", args.batch, MAX_BENCH_BATCH),
        ("--threads", args.threads, 1024),
        ("--rounds", args.rounds, 10_000),
    ] {
        if !(1..=max).contains(&value) {
            bail!("{flag} must be between 1 and {max}, got {value}");
        }
    }
    Ok(())
}

/// `batch` seeded random images of `image_len` bytes each, one after the other.
fn random_images(batch: usize, image_len: usize) -> Vec<u8> {
    let mut rng = mognet_arch::rng::SplitMix64::new(42);
    (0..batch * image_len)
        .map(|_| (rng.next_u64() % 256) as u8)
        .collect()
}

/// The fast engine's median images/s on `images`, after checking it against the reference on
/// the first image; prints the figure.
fn time_fast(
    model: &IntModel,
    fast: &FastModel,
    images: &[u8],
    variant: Variant,
    args: &BenchArgs,
) -> Result<f64> {
    let (batch, threads, rounds) = (args.batch, args.threads, args.rounds);
    let first = &images[..fast.image_len()];
    if fast.predict(first, &mut fast.scratch(), variant)? != model.predict(first)? {
        bail!("fast kernels disagree with the reference: refusing to benchmark");
    }
    // Threads and working memory are set up once, as a serving loop would.
    let runner = mognet_infer::fast::runner::Runner::new(fast, threads, variant);
    runner.predict_batch(images)?;
    let rate = median_rate(rounds, batch, || {
        let _ = std::hint::black_box(runner.predict_batch(images));
    });
    println!(
        "fast engine: batch {batch}, {threads} thread(s): {rate:.0} images/s (median of {rounds}), {:.2} GMAC/s",
        rate * fast.macs() as f64 / 1e9
    );
    Ok(rate)
}

/// Runs the benchmark `args` describe and prints its figures.
pub fn bench(args: &BenchArgs) -> Result<()> {
    check_limits(args)?;
    if let Some(dir) = &args.onnx_dir {
        // Before the timing, so that a bad folder fails at once.
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let device = Device::flex();
    let (model, float_model, name) = bench_model(args.source()?, &device)?;
    let fast = FastModel::new(&model);
    let images = random_images(args.batch, fast.image_len());
    println!(
        "model: {name}; {:.2} M MACs per image",
        fast.macs() as f64 / 1e6
    );
    let variant = bench_variant(args.variant.map(Variant::from))?;
    let rate = time_fast(&model, &fast, &images, variant, args)?;
    print_profile(&fast, &images, variant, rate, args.threads);
    if args.onnx_dir.is_none() && !args.compare {
        return Ok(());
    }
    // Made once for both uses; the qdq export (a calibration pass of the scalar engine) only
    // when it is written.
    let exports = onnx_exports(
        &model,
        float_model.as_ref(),
        &images,
        args.onnx_dir.is_some(),
    )?;
    if let Some(dir) = &args.onnx_dir {
        write_exports(dir, &exports)?;
    }
    if args.compare {
        let float_model = float_model.as_ref();
        compare(&model, float_model, &exports, &images, rate, args, &device)?;
    }
    Ok(())
}

/// The scalar reference, Burn's Flex float eval and tract, on `images`, against the fast
/// engine's `rate`.
fn compare(
    model: &IntModel,
    float_model: Option<&mognet_core::Mognet>,
    exports: &[(&str, OnnxExport)],
    images: &[u8],
    rate: f64,
    args: &BenchArgs,
    device: &Device,
) -> Result<()> {
    let (batch, threads) = (args.batch, args.threads);
    let (n, scalar) = scalar_rate(model, images, batch, threads);
    println!(
        "scalar reference: {scalar:.1} images/s ({n} images, {threads} thread(s)); fast/scalar = {:.1}x",
        rate / scalar
    );
    match float_model {
        Some(m) => {
            let flex = flex_rate(m, &model.spec, images, batch, threads, device)?;
            println!(
                "Burn Flex float eval: {flex:.1} images/s (batch {batch}, {threads} thread(s)); fast/flex = {:.1}x",
                rate / flex
            );
        }
        None => {
            println!("Burn Flex float eval: not run (give --run or --preset for a float model)")
        }
    }
    // tract runs the float graph when there is one (what a float runtime would be given), else
    // the exact one.
    let (style, graph) = exports
        .iter()
        .find(|(s, _)| *s == "float")
        .or_else(|| exports.iter().find(|(s, _)| *s == "exact"))
        .context("the exact export is always made")?;
    let tract = tract_rate(&graph.bytes, model, images, threads)?;
    println!(
        "tract ({style} ONNX export): {tract:.1} images/s (batch {batch}, {threads} thread(s)); fast/tract = {:.1}x",
        rate / tract
    );
    Ok(())
}

/// The model's ONNX exports by style: `exact`, `qdq` (calibrated on `images`; only when `qdq`)
/// and, given the float model, `float`.
fn onnx_exports(
    model: &IntModel,
    float_model: Option<&mognet_core::Mognet>,
    images: &[u8],
    qdq: bool,
) -> Result<Vec<(&'static str, OnnxExport)>> {
    let mut exports = vec![("exact", mognet_infer::onnx::export_exact(model))];
    if qdq {
        exports.push(("qdq", mognet_infer::onnx::export_qdq(model, images)?));
    }
    if let Some(m) = float_model {
        let parts = mognet_core::onnx::float_parts(m);
        exports.push(("float", mognet_infer::onnx::export_float(model, &parts)));
    }
    Ok(exports)
}

/// Writes each export to `dir/STYLE.onnx`.
fn write_exports(dir: &Path, exports: &[(&str, OnnxExport)]) -> Result<()> {
    for (style, export) in exports {
        let path = dir.join(format!("{style}.onnx"));
        mognet_core::persist::write_atomic(&path, &export.bytes)?;
        println!("wrote {} ({} bytes)", path.display(), export.bytes.len());
    }
    Ok(())
}

/// Images/s of tract running `graph` on `images` (the whole batch per call), with `threads`
/// threads for its matrix products.
fn tract_rate(graph: &[u8], model: &IntModel, images: &[u8], threads: usize) -> Result<f64> {
    let n = images.len() / model.image_len();
    let plan = crate::tract::Plan::new(graph, model, n)?;
    let input = plan.input(images)?;
    let executor = tract_linalg::multithread::Executor::multithread(threads);
    tract_linalg::multithread::multithread_tract_scope(executor, || {
        plan.run(&input)?;
        Ok(median_rate(3, n, || {
            let _ = std::hint::black_box(plan.run(&input));
        }))
    })
}
