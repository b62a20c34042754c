//! Helpers the trainer's integration tests share.
// Each test crate includes this module and uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use mognet_core::persist::{RunWeights, load_run_model};

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
