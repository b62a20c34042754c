//! `train`: one training run into a run folder.

use std::path::PathBuf;

use anyhow::Result;
use mognet_train::BackendChoice;
use mognet_train::data::cli::DataArgs;
use mognet_train::train::{DistillConfig, OptimizerKind, RunConfig, Schedule, TrainConfig, train};

/// Arguments of `train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
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
    /// Distill from this trained model (a .bpk with its config beside it, as for --init);
    /// repeat for an ensemble, whose softmaxes are averaged. The loss becomes (1 - W) times the
    /// label cross-entropy plus W times T^2 times the cross-entropy against the teachers'
    /// softmax at temperature T.
    #[arg(long = "teacher")]
    teachers: Vec<PathBuf>,
    /// Distillation temperature T.
    #[arg(long, default_value_t = 4.0, requires = "teachers")]
    distill_temperature: f64,
    /// Distillation weight W, in [0, 1].
    #[arg(long, default_value_t = 0.5, requires = "teachers")]
    distill_weight: f64,
    /// Random horizontal flip on or off (default: on, except for MNIST, whose digits are not
    /// mirror-symmetric). The run's config.json records the augmentation used.
    #[arg(long)]
    flip: Option<bool>,
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
    train_config.distill = (!args.teachers.is_empty()).then(|| {
        DistillConfig::new(args.teachers.clone())
            .with_temperature(args.distill_temperature)
            .with_weight(args.distill_weight)
    });
    train_config.check()?;
    Ok(RunConfig {
        model,
        train: train_config,
    })
}

/// Trains (or resumes) the run, then tests its best model once unless told not to.
pub fn run(args: TrainArgs) -> Result<()> {
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
        // No best epoch, with or without a validation set: none has finished.
        None if outcome.best_epoch == 0 => println!(
            "no epoch has finished yet; run folder {}",
            args.out.display()
        ),
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
