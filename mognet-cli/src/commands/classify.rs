//! `classify`: the class and logits of PNG images.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use mognet_data::Picture;
use mognet_infer::IntModel;

/// Arguments of `classify`.
#[derive(Debug, clap::Args)]
pub struct ClassifyArgs {
    /// The model file.
    #[arg(long)]
    model: PathBuf,
    /// Resize images whose size differs from the model's input (nearest neighbour);
    /// without it such images are refused (28x28 grayscale images are zero-padded to 32x32,
    /// as the datasets are).
    #[arg(long)]
    resize: bool,
    /// PNG files.
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

/// Prints each image's class and real logits.
pub fn run(args: ClassifyArgs) -> Result<()> {
    let (model, _) = IntModel::load(&args.model)?;
    let s = &model.spec;
    for image in &args.images {
        let pixels =
            Picture::read_png(image)?.fit(image, s.in_channels, s.input_size, args.resize)?;
        let p = model
            .predict(&pixels)
            .with_context(|| image.display().to_string())?;
        let logits: Vec<String> = model
            .real_logits(&p)
            .iter()
            .map(|v| format!("{v:.3}"))
            .collect();
        println!(
            "{}: class {} logits [{}]",
            image.display(),
            p.class,
            logits.join(", ")
        );
    }
    Ok(())
}
