//! Embedding the engine: load a `.mognet` file, classify images with the reference engine one by
//! one, then a whole set with the fast engine as a server would keep it (threads and working
//! memory set up once). The images here are the shipped Fashion-MNIST sample's; an application
//! passes its own `u8` pixels, `[channel][y][x]`, at the model's input size.
//!
//! ```sh
//! cargo run -p mognet-infer --example classify -- [MODEL.mognet] [COUNT]
//! ```

use std::error::Error;
use std::path::{Path, PathBuf};

use mognet_data::{Cifar100Label, DatasetKind, Split};
use mognet_infer::IntModel;
use mognet_infer::fast::runner::Runner;
use mognet_infer::fast::{FastModel, Variant};

fn main() -> Result<(), Box<dyn Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("checkpoints/mognet-s-fmnist.mognet"));
    let count: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5);

    // Loading checks everything (magic, version, checksum, shapes, the CA rows) and names the
    // file in its errors.
    let (model, info) = IntModel::load(&path)?;
    let [h, w] = model.spec.input_size;
    println!(
        "{}: {} bytes, {}x{}x{} inputs, {} classes",
        path.display(),
        info.bytes,
        model.spec.in_channels,
        h,
        w,
        model.spec.num_classes
    );

    let sample = root.join("datasets/samples/fashion-mnist");
    let set = DatasetKind::FashionMnist.load(&sample, Split::Test, Cifar100Label::Fine)?;
    for i in 0..count.min(set.len()) {
        // An image of the wrong size would be an `InputError`, not a panic.
        let p = model.predict(set.image(i))?;
        println!("image {i}: class {} (label {})", p.class, set.labels[i]);
    }

    let fast = FastModel::new(&model);
    let runner = Runner::new(&fast, 2, Variant::detect());
    let predictions = runner.predict_batch(&set.pixels)?;
    let correct = predictions
        .iter()
        .zip(&set.labels)
        .filter(|(p, l)| p.class == **l as usize)
        .count();
    println!(
        "fast engine ({}): {correct} of {} correct",
        Variant::detect().name(),
        set.len()
    );
    Ok(())
}
