//! Helpers the trainer's integration tests share.
// Each test crate includes this module and uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use mognet_core::persist::{RunWeights, load_run_model};
use mognet_core::{MognetConfig, StageSpec};
use mognet_train::data::DatasetKind;
use mognet_train::train::{RunConfig, TrainConfig};

/// The Fashion-MNIST sample the repository ships.
pub fn sample_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../datasets/samples/fashion-mnist")
}

/// A small network with every part (two stages, an MRB, pooling) trained for `epochs` on the
/// first `limit` images of the sample's training part (1,000 held out, 200 of them validated
/// on), batch 32, lr 0.05, seed 11.
pub fn tiny_run(epochs: usize, limit: usize) -> RunConfig {
    let stage = |n, groups| StageSpec {
        n,
        m: n,
        groups,
        blocks: 2,
    };
    RunConfig {
        model: MognetConfig::new(8, vec![stage(8, 2), stage(16, 4)])
            .with_in_channels(1)
            .with_num_classes(10)
            .with_seed(3),
        train: TrainConfig::new(DatasetKind::FashionMnist, sample_dir())
            .with_epochs(epochs)
            .with_batch_size(32)
            .with_lr(0.05)
            .with_limit_train(Some(limit))
            .with_limit_valid(Some(200))
            .with_valid_split(Some(1000))
            .with_seed(11),
    }
}

/// An empty folder `mognet-{test}-{name}-PID` under the temporary folder's path (not created).
pub fn scratch(test: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mognet-{test}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Bit patterns of every float tensor of a module, in visiting order.
struct AllFloats(Vec<u32>);
impl ModuleVisitor for AllFloats {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let values = param.val().into_data().try_into_vec_as::<f32>().unwrap();
        self.0.extend(values.iter().map(|v| v.to_bits()));
    }
}

/// Every parameter and running statistic of a run's last checkpoint, bit for bit (the files
/// themselves differ in the parameter ids, which are random per model instance).
pub fn last_weights(run: &Path) -> Vec<u32> {
    let (_, model) = load_run_model(run, RunWeights::Last, &Device::flex()).unwrap();
    let mut all = AllFloats(Vec::new());
    model.visit(&mut all);
    all.0
}
