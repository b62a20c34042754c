//! `mognet-train`: the command-line trainer.

mod model_args;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use burn::tensor::{Tensor, TensorData};
use clap::{Parser, Subcommand, ValueEnum};
use model_args::ModelArgs;
use mognet_core::persist::{RunWeights, load_run_model, load_weights_file};
use mognet_train::data::Split;
use mognet_train::data::cli::DataArgs;
use mognet_train::eval::evaluate;
use mognet_train::train::{OptimizerKind, RunConfig, Schedule, TrainConfig, train};
use mognet_train::{BackendChoice, bench, demo};

#[derive(Debug, Parser)]
#[command(
    name = "mognet-train",
    version,
    about = "Train MOGNET networks and inspect their size"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum WhichCheckpoint {
    /// The best model by validation accuracy (`best.bpk`).
    Best,
    /// The last checkpoint.
    Last,
}

/// The convolution kernels `bench-train` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kernels {
    /// mognet's own operations (`mognet_core::ops`): the default everywhere.
    Custom,
    /// Burn's `conv2d` and the gradients Burn derives for it.
    Reference,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the model's size in bits, layer by layer; last line `total: <bits> bits (<x> Mb)`.
    Summary {
        #[command(flatten)]
        model: ModelArgs,
        /// Also run a freshly initialised model on this many synthetic images and print the
        /// activation-code histogram of every layer and the logits of the first image.
        #[arg(long, default_value_t = 0)]
        forward: usize,
        /// Backend for --forward.
        #[arg(long, value_enum, default_value = "flex")]
        backend: BackendChoice,
    },
    /// Benchmark one training step (median images/s, with forward/backward/optimizer times) and
    /// the float eval forward, for each preset given.
    BenchTrain {
        /// Presets to measure.
        #[arg(long = "preset", default_values = ["mognet-s", "mognet-m", "mognet-l"])]
        presets: Vec<mognet_core::Preset>,
        /// Batch size.
        #[arg(long, default_value_t = 128)]
        batch: usize,
        /// Timed steps (after 2 warm-up steps); the figures are their medians.
        #[arg(long, default_value_t = 5)]
        steps: usize,
        /// Input channels.
        #[arg(long, default_value_t = 1)]
        in_channels: usize,
        /// Backend.
        #[arg(long, value_enum, default_value = "flex")]
        backend: BackendChoice,
        /// CPU threads for Flex and mognet's kernels. Default: one per core.
        #[arg(long)]
        threads: Option<usize>,
        /// Which convolution the layers run: mognet's own operations or the composed reference
        /// (Burn's `conv2d` and its derived gradients), to measure one against the other.
        #[arg(long, value_enum, default_value = "custom")]
        kernels: Kernels,
    },
    /// Benchmark data loading: batches/s of CIFAR-shaped augmented batches through Burn's
    /// multi-threaded loader and through the trainer's in-order pipeline.
    BenchData {
        /// Batch size.
        #[arg(long, default_value_t = 128)]
        batch: usize,
        /// Loader threads for Burn's loader.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Images in the synthetic set.
        #[arg(long, default_value_t = 10_000)]
        images: usize,
        /// Timed passes over the set.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// The main job: train mognet-s on the shipped Fashion-MNIST sample for a short budget,
    /// export it, check float/integer parity and run the integer engine; prints one table.
    Demo {
        /// Output folder (replaced if an earlier demo wrote it).
        #[arg(long, default_value = "runs/demo")]
        out: PathBuf,
        /// Folder with the Fashion-MNIST files.
        #[arg(long, default_value = "datasets/samples/fashion-mnist")]
        data_dir: PathBuf,
        /// Training budget in minutes (the default fits about seven epochs of the sample on 2
        /// idle cores; the demo needs three for 80% test accuracy). A budget that covers one
        /// epoch trains at least three, even where they take longer.
        #[arg(long, default_value_t = 4.0)]
        minutes: f64,
        /// Backend for training.
        #[arg(long, value_enum, default_value = "auto")]
        backend: BackendChoice,
    },
    /// Train a model; checkpoints, metrics and the best model go to --out.
    Train(TrainArgs),
    /// Run a grid of arms times seeds as run folders under --out: finished runs are skipped,
    /// interrupted ones resumed; each finished run is exported and tested once by the integer
    /// engine (ARM/seed-S/result.json).
    Sweep {
        /// The grid file (JSON; see the README's "Sweeps").
        #[arg(long)]
        grid: PathBuf,
        /// The sweep folder.
        #[arg(long)]
        out: PathBuf,
        /// Run only every N-th job, starting with the K-th (`K/N`, 1-based), so that N machines
        /// or processes share a sweep without coordination.
        #[arg(long)]
        shard: Option<String>,
        /// Backend for training.
        #[arg(long, value_enum, default_value = "auto")]
        backend: BackendChoice,
    },
    /// The table of a sweep: per arm bits, MACs, validation and integer test accuracy (mean +-
    /// std over seeds), the difference to the first arm; writes report.md, report.json and
    /// report.png into the sweep folder and prints the table.
    Report {
        /// The sweep folder.
        #[arg(long)]
        sweep: PathBuf,
        /// Print the JSON form instead of the markdown table.
        #[arg(long)]
        json: bool,
    },
    /// Draw a run's training curves (loss and accuracy per epoch) as a PNG.
    Plot {
        /// The run folder (reads its metrics.jsonl).
        #[arg(long)]
        run: PathBuf,
        /// The picture; default RUN_DIR/curves.png.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Float accuracy of a run's model on the test split; last line `accuracy: 0.xxxx
    /// (correct/total)`.
    Eval {
        /// The run folder.
        #[arg(long, required_unless_present = "weights", conflicts_with = "weights")]
        run: Option<PathBuf>,
        /// A weights file instead of a run (NAME.bpk with NAME.config.json beside it, such as
        /// the shipped checkpoints/NAME.bpk).
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Which weights.
        #[arg(long, value_enum, default_value = "best")]
        checkpoint: WhichCheckpoint,
        #[command(flatten)]
        data: DataArgs,
        /// Evaluate the first N test images only.
        #[arg(long)]
        limit: Option<usize>,
        /// Backend.
        #[arg(long, value_enum, default_value = "flex")]
        backend: BackendChoice,
        /// Batch size.
        #[arg(long, default_value_t = 256)]
        batch_size: usize,
    },
}

#[derive(Debug, clap::Args)]
struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Preset: mognet-s, mognet-m or mognet-l.
    #[arg(long, default_value = "mognet-s")]
    preset: mognet_core::Preset,
    /// A model config in JSON; overrides --preset (its channels and classes must fit the data).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Epochs.
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Optimizer (SGD: Nesterov momentum 0.9).
    #[arg(long, value_enum, default_value = "sgd")]
    optimizer: OptimizerKind,
    /// Peak learning rate (default 0.1 for SGD, 2e-3 for Adam).
    #[arg(long)]
    lr: Option<f64>,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value = "onecycle")]
    schedule: Schedule,
    /// Warmup epochs (0 with one-cycle: 30% of the run).
    #[arg(long, default_value_t = 0.0)]
    warmup_epochs: f64,
    /// Weight decay on convolution weights only.
    #[arg(long, default_value_t = 5e-4)]
    weight_decay: f64,
    /// Weight of the BTQ level-balancing regularizer.
    #[arg(long, default_value_t = 0.01)]
    reg_lambda: f64,
    /// Label smoothing of the training loss, in [0, 1): the target keeps 1 - A on the label
    /// and spreads A over all classes (default: none).
    #[arg(long)]
    label_smoothing: Option<f64>,
    /// Seed of the model initialisation, data order and augmentation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Backend: auto picks WGPU on a hardware GPU, else Flex.
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendChoice,
    /// Run folder (config.json, metrics.jsonl, checkpoints/, best.bpk).
    #[arg(long)]
    out: PathBuf,
    /// Continue the run in --out from its last checkpoint (its config.json is used; --epochs
    /// and --time-budget may extend it).
    #[arg(long)]
    resume: bool,
    /// Train on the first N training images only.
    #[arg(long)]
    limit_train: Option<usize>,
    /// Validate on the first N validation images only.
    #[arg(long)]
    limit_valid: Option<usize>,
    /// Training images held out (class-balanced, fixed by --seed) to validate on: they pick
    /// the best epoch. 0 holds none out (no validation; the last epoch is kept). The test
    /// split is read once, after the last epoch, into RUN_DIR/test.json.
    #[arg(long, default_value_t = 5000)]
    valid_split: usize,
    /// Start from these weights (a .bpk with its config: NAME.config.json beside it, or the
    /// run folder's config.json) instead of a fresh initialisation: fine-tuning. The model is
    /// the one the weights were trained as (--preset and --config do not apply).
    #[arg(long, conflicts_with = "config")]
    init: Option<PathBuf>,
    /// Do not evaluate the best model on the test split after the last epoch.
    #[arg(long)]
    no_test: bool,
    /// Stop after this many minutes, checkpointing where the budget ran out (within an epoch
    /// if need be); --resume continues exactly there.
    #[arg(long)]
    time_budget: Option<f64>,
    /// Stop after this many epochs in this session (continue later with --resume).
    #[arg(long)]
    stop_after: Option<usize>,
    /// Stop after this many optimizer steps in this session, checkpointing there (continue
    /// later with --resume).
    #[arg(long)]
    stop_after_steps: Option<usize>,
    /// Checkpoint within an epoch every this many minutes (0: at epoch ends only), so that a
    /// killed session loses at most that much work.
    #[arg(long, default_value_t = 10.0)]
    checkpoint_minutes: f64,
    /// Disable augmentation (random crop and flip).
    #[arg(long, conflicts_with = "flip")]
    no_augment: bool,
    /// Random horizontal flip on or off (default: on, except for MNIST, whose digits are not
    /// mirror-symmetric). The run's config.json records the augmentation used.
    #[arg(long)]
    flip: Option<bool>,
}

fn bench_train(
    presets: &[mognet_core::Preset],
    batch: usize,
    steps: usize,
    in_channels: usize,
    backend: BackendChoice,
    threads: Option<usize>,
    kernels: Kernels,
) -> Result<()> {
    if batch == 0 || steps == 0 || in_channels == 0 {
        bail!("--batch, --steps and --in-channels must be at least 1");
    }
    if let Some(threads) = threads {
        if threads == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .context("setting up the thread pool")?;
    }
    mognet_core::ops::use_reference_kernels(kernels == Kernels::Reference);
    let selected = backend.select()?;
    println!(
        "backend: {}, {} threads, {kernels:?} kernels",
        selected.description,
        rayon::current_num_threads()
    );
    for &preset in presets {
        let config = mognet_core::MognetConfig::preset(preset, in_channels, 10);
        let t = bench::train_step(&config, batch, 2, steps, &selected.device);
        let eval = bench::eval_throughput(&config, batch, steps, &selected.device);
        println!(
            "{preset} batch {batch}: train {:.1} img/s (step {:.3} s = forward {:.3} + backward {:.3} + optimizer {:.3}), float eval {:.1} img/s",
            t.images_per_sec, t.step, t.forward, t.backward, t.optimizer, eval
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Summary {
            model,
            forward,
            backend,
        } => summary(&model, forward, backend),
        Command::Train(args) => train_command(args),
        Command::Sweep {
            grid,
            out,
            shard,
            backend,
        } => sweep_command(&grid, &out, shard.as_deref(), backend),
        Command::Report { sweep, json } => report_command(&sweep, json),
        Command::Plot { run, out } => {
            let out = out.unwrap_or_else(|| run.join("curves.png"));
            let epochs = mognet_train::plot::plot_run(&run, &out)?;
            println!("wrote {} ({epochs} epochs)", out.display());
            Ok(())
        }
        Command::Demo {
            out,
            data_dir,
            minutes,
            backend,
        } => demo_command(&out, &data_dir, minutes, backend),
        Command::BenchTrain {
            presets,
            batch,
            steps,
            in_channels,
            backend,
            threads,
            kernels,
        } => bench_train(
            &presets,
            batch,
            steps,
            in_channels,
            backend,
            threads,
            kernels,
        ),
        Command::BenchData {
            batch,
            workers,
            images,
            rounds,
        } => bench_data(batch, workers, images, rounds),
        Command::Eval {
            run,
            weights,
            checkpoint,
            data,
            limit,
            backend,
            batch_size,
        } => {
            let source = match (run, weights) {
                (Some(run), _) => WeightsSource::Run(run, checkpoint),
                (None, Some(file)) => WeightsSource::File(file),
                (None, None) => bail!("give --run or --weights"),
            };
            eval_command(&source, &data, limit, backend, batch_size)
        }
    }
}

fn report_command(sweep: &Path, json: bool) -> Result<()> {
    let report = mognet_train::sweep::collect(sweep)?;
    report.write(sweep)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.markdown());
        println!(
            "wrote {}, report.json and report.png",
            sweep.join("report.md").display()
        );
    }
    Ok(())
}

fn demo_command(out: &Path, data_dir: &Path, minutes: f64, backend: BackendChoice) -> Result<()> {
    if !(minutes.is_finite() && minutes > 0.0 && minutes <= 24.0 * 60.0) {
        bail!("--minutes must be above 0 and at most a day (1440), got {minutes}");
    }
    let selected = backend.select()?;
    println!("backend: {}", selected.description);
    let report = demo::demo(out, data_dir, minutes, &selected, &mut |line| {
        println!("{line}")
    })?;
    println!("{}", report.render(out));
    Ok(())
}

fn bench_data(batch: usize, workers: usize, images: usize, rounds: usize) -> Result<()> {
    if [batch, workers, images, rounds].contains(&0) {
        bail!("--batch, --workers, --images and --rounds must be at least 1");
    }
    let (burn_rate, own_rate) =
        bench::data_loading(bench::random_cifar_like(images), batch, workers, rounds);
    println!(
        "CIFAR-shaped batches of {batch} with crop+flip: Burn DataLoader ({workers} workers) {burn_rate:.1} batches/s ({:.0} img/s); trainer pipeline (1 helper thread) {own_rate:.1} batches/s ({:.0} img/s)",
        burn_rate * batch as f64,
        own_rate * batch as f64
    );
    Ok(())
}

/// The run `train` asks for: the model (a preset, a config file or `--init`'s) and the
/// training config, checked.
fn run_config(args: &TrainArgs) -> Result<RunConfig> {
    let d = &args.data;
    let model = match (&args.init, &args.config) {
        (Some(weights), _) => mognet_core::persist::weights_model_config(weights)?,
        (None, Some(path)) => mognet_core::MognetConfig::from_file(path)?,
        (None, None) => mognet_core::MognetConfig::preset(
            args.preset,
            d.dataset.channels(),
            d.dataset.num_classes(d.cifar100_label),
        ),
    }
    .with_seed(args.seed);
    let lr = args.lr.unwrap_or(match args.optimizer {
        OptimizerKind::Sgd => 0.1,
        OptimizerKind::Adam => 2e-3,
    });
    let mut train_config = TrainConfig::new(d.dataset, d.data_dir.clone())
        .with_cifar100_label(d.cifar100_label)
        .with_epochs(args.epochs)
        .with_batch_size(args.batch_size)
        .with_optimizer(args.optimizer)
        .with_lr(lr)
        .with_schedule(args.schedule)
        .with_warmup_epochs(args.warmup_epochs)
        .with_weight_decay(args.weight_decay)
        .with_reg_lambda(args.reg_lambda)
        .with_label_smoothing(args.label_smoothing)
        .with_seed(args.seed)
        .with_backend(args.backend)
        .with_limit_train(args.limit_train)
        .with_limit_valid(args.limit_valid)
        .with_valid_split(Some(args.valid_split))
        .with_init(args.init.clone())
        .with_time_budget_minutes(args.time_budget)
        .with_stop_after_epochs(args.stop_after)
        .with_stop_after_steps(args.stop_after_steps)
        .with_checkpoint_minutes(args.checkpoint_minutes);
    let mut augment = mognet_train::data::Augment::default_for(d.dataset);
    if let Some(flip) = args.flip {
        augment.flip = flip;
    }
    if args.no_augment {
        augment = mognet_train::data::Augment::NONE;
    }
    train_config.augment = Some(augment);
    train_config.check()?;
    Ok(RunConfig {
        model,
        train: train_config,
    })
}

fn train_command(args: TrainArgs) -> Result<()> {
    let run = run_config(&args)?;
    let selected = args.backend.select()?;
    println!("backend: {}", selected.description);
    let outcome = train(
        &args.out,
        &run,
        args.resume,
        &selected.device,
        &mut |line| println!("{line}"),
    )?;
    match outcome.best_valid_acc {
        Some(acc) => println!(
            "best valid accuracy {acc:.4} at epoch {}; run folder {}",
            outcome.best_epoch,
            args.out.display()
        ),
        None => println!(
            "no validation set: the last epoch ({}) is the run's model; run folder {}",
            outcome.best_epoch,
            args.out.display()
        ),
    }
    if !outcome.stopped_by_budget && !args.no_test {
        println!("evaluating the best model on the test split (read once, now)...");
        let test = mognet_train::train::test_best(&args.out, &selected.device)?;
        println!(
            "{}; written to {}",
            test.summary(),
            args.out.join("test.json").display()
        );
    }
    Ok(())
}

/// The weights `eval` reads.
enum WeightsSource {
    /// A run folder and which of its weights.
    Run(PathBuf, WhichCheckpoint),
    /// A `.bpk` with its config.
    File(PathBuf),
}

fn sweep_command(
    grid: &Path,
    out: &Path,
    shard: Option<&str>,
    backend: BackendChoice,
) -> Result<()> {
    use mognet_train::sweep::{Grid, JobStatus, Shard, SweepOptions, run_sweep};
    let grid = Grid::load(grid)?;
    let shard = shard.map(Shard::parse).transpose()?.unwrap_or(Shard::ALL);
    let selected = backend.select()?;
    println!("backend: {}", selected.description);
    let options = SweepOptions {
        shard,
        stop_after_steps: None,
    };
    let statuses = run_sweep(&grid, out, options, &selected.device, &mut |line| {
        println!("{line}")
    })?;
    let count = |s: JobStatus| statuses.iter().filter(|(_, x)| *x == s).count();
    println!(
        "shard {}/{}: {} jobs run, {} finished before; `mognet-train report --sweep {}` for the table",
        shard.k,
        shard.n,
        count(JobStatus::Done),
        count(JobStatus::Skipped),
        out.display()
    );
    Ok(())
}

fn eval_command(
    source: &WeightsSource,
    data: &DataArgs,
    limit: Option<usize>,
    backend: BackendChoice,
    batch_size: usize,
) -> Result<()> {
    if batch_size == 0 || limit == Some(0) {
        bail!("--batch-size and --limit must be at least 1");
    }
    let selected = backend.select()?;
    let (config, model) = match source {
        WeightsSource::Run(run_dir, which) => {
            let which = match which {
                WhichCheckpoint::Best => RunWeights::Best,
                WhichCheckpoint::Last => RunWeights::Last,
            };
            load_run_model(run_dir, which, &selected.device)?
        }
        WeightsSource::File(file) => load_weights_file(file, &selected.device)?,
    };
    let set = data
        .load(Split::Test, limit)
        .with_context(|| format!("loading the {} test set", data.dataset.name()))?;
    if set.channels != config.in_channels || set.num_classes != config.num_classes {
        bail!(
            "the run's model takes {} channels and {} classes; {} has {} and {}",
            config.in_channels,
            config.num_classes,
            data.dataset.name(),
            set.channels,
            set.num_classes
        );
    }
    println!("backend: {}", selected.description);
    let report = evaluate(&model, &set, batch_size, &selected.device, None);
    println!("loss: {:.4}", report.loss);
    for (name, rate) in &report.gate_on {
        println!("gate-on {name}: {rate:.3}");
    }
    println!(
        "accuracy: {:.4} ({}/{})",
        report.accuracy(),
        report.correct,
        report.total
    );
    Ok(())
}

/// The most synthetic images `summary --forward` runs (they are one batch).
const MAX_FORWARD: usize = 4096;

fn summary(model: &ModelArgs, forward: usize, backend: BackendChoice) -> Result<()> {
    if forward > MAX_FORWARD {
        bail!("--forward must be at most {MAX_FORWARD}, got {forward}");
    }
    let config = model.config()?;
    if forward > 0 {
        let selected = backend.select()?;
        println!("backend: {}", selected.description);
        let net = config.init(&selected.device)?;
        let [h, w] = config.input_size;
        let c = config.in_channels;
        let mut rng = mognet_core::SplitMix64::new(config.seed);
        let pixels: Vec<f32> = (0..forward * c * h * w)
            .map(|_| (rng.next_u64() % 256) as f32 / 255.0)
            .collect();
        let x = Tensor::<4>::from_data(
            TensorData::new(pixels, [forward, c, h, w]),
            &selected.device,
        );
        let (logits, trace) = net.forward_trace(x);
        let q = (1usize << config.bits) - 1;
        println!("activation codes per layer (fraction of each code 0..={q}):");
        for (name, codes) in trace.codes {
            let values: Vec<f32> = codes.into_data().try_into_vec_as::<f32>()?;
            let mut hist = vec![0usize; q + 1];
            for v in &values {
                hist[*v as usize] += 1;
            }
            let fractions: Vec<String> = hist
                .iter()
                .map(|n| format!("{:.2}", *n as f64 / values.len() as f64))
                .collect();
            println!("  {name:<12} {}", fractions.join(" "));
        }
        let first: Vec<f32> = logits.slice(0..1).into_data().try_into_vec_as::<f32>()?;
        let shown: Vec<String> = first.iter().map(|v| format!("{v:.3}")).collect();
        println!("logits of image 0: [{}]", shown.join(", "));
    }
    println!("{}", config.summary().render());
    Ok(())
}
