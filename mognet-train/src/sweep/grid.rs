//! A sweep's grid file: arms (config overrides) times seeds, and the jobs it expands to.
//!
//! ```json
//! {
//!   "dataset": "fashion-mnist", "data_dir": "datasets/fashion-mnist", "preset": "mognet-s",
//!   "seeds": [1, 2, 3],
//!   "model": { },                      // overrides of every arm's model config
//!   "train": { "epochs": 8 },          // overrides of every arm's training config
//!   "arms": [
//!     { "name": "mognet", "about": "as shipped" },
//!     { "name": "prng-pw2", "about": "PW2 from a plain PRNG", "model": { "pw2": "prng" } }
//!   ]
//! }
//! ```
//!
//! An override is a JSON object merged into the config's JSON form (nested objects such as
//! `btq` merge key by key). A job's model and data seeds are both its seed.

use std::path::{Path, PathBuf};

use mognet_core::{MognetConfig, Preset};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::data::DatasetKind;
use crate::train::{RunConfig, TrainConfig};

/// Why a grid cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GridError {
    /// The file cannot be read or parsed.
    #[error("{path}: {detail}")]
    File {
        /// The grid file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// An arm's overrides do not make a valid config.
    #[error("arm {arm}: {detail}")]
    Arm {
        /// The arm.
        arm: String,
        /// What is wrong.
        detail: String,
    },
    /// A shard is not `K/N` with `1 <= K <= N`.
    #[error("--shard {0}: expected K/N with 1 <= K <= N, e.g. 2/4")]
    Shard(String),
}

/// One arm: a name and its overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    /// Folder name and table label (letters, digits, `-`, `_`).
    pub name: String,
    /// One line on what the arm tests.
    #[serde(default)]
    pub about: String,
    /// Model config overrides.
    #[serde(default)]
    pub model: Value,
    /// Training config overrides.
    #[serde(default)]
    pub train: Value,
}

/// A grid file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// Dataset of every run.
    pub dataset: DatasetKind,
    /// Its folder.
    pub data_dir: PathBuf,
    /// The preset every arm starts from.
    pub preset: Preset,
    /// Seeds: each arm runs once per seed.
    pub seeds: Vec<u64>,
    /// Model overrides of every arm (before the arm's own).
    #[serde(default)]
    pub model: Value,
    /// Training overrides of every arm (before the arm's own).
    #[serde(default)]
    pub train: Value,
    /// The arms; the first is the reference the report compares the others with.
    pub arms: Vec<Arm>,
}

/// One run of a sweep: an arm and a seed.
#[derive(Debug, Clone)]
pub struct Job {
    /// Index of the arm in the grid.
    pub arm: usize,
    /// Arm name.
    pub name: String,
    /// The seed.
    pub seed: u64,
    /// The run's configs.
    pub run: RunConfig,
}

impl Job {
    /// The job's run folder under the sweep folder: `ARM/seed-S`.
    pub fn dir(&self, sweep: &Path) -> PathBuf {
        sweep.join(&self.name).join(format!("seed-{}", self.seed))
    }
}

/// Merges `patch` into `base`: objects key by key (recursively), anything else replaced.
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (_, Value::Null) => {}
        (b, p) => *b = p.clone(),
    }
}

/// `base` with the overrides applied, read back as `T`; unknown keys are errors.
fn overridden<T: Serialize + serde::de::DeserializeOwned>(
    base: &T,
    patches: [&Value; 2],
) -> Result<T, String> {
    let mut value = serde_json::to_value(base).map_err(|e| e.to_string())?;
    for patch in patches {
        if let Value::Object(p) = patch
            && let Value::Object(b) = &value
            && let Some(k) = p.keys().find(|k| !b.contains_key(*k))
        {
            return Err(format!("unknown config field \"{k}\""));
        }
        merge(&mut value, patch);
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

impl Grid {
    /// Reads and checks a grid file.
    pub fn load(path: &Path) -> Result<Grid, GridError> {
        let file_error = |detail: String| GridError::File {
            path: path.to_path_buf(),
            detail,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
        let grid: Grid = serde_json::from_str(&text).map_err(|e| file_error(e.to_string()))?;
        if grid.arms.is_empty() || grid.seeds.is_empty() {
            return Err(file_error("needs at least one arm and one seed".into()));
        }
        for (i, arm) in grid.arms.iter().enumerate() {
            let valid_name = !arm.name.is_empty()
                && arm
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid_name || grid.arms[..i].iter().any(|a| a.name == arm.name) {
                return Err(file_error(format!(
                    "arm name \"{}\" must be unique and made of letters, digits, - and _",
                    arm.name
                )));
            }
        }
        grid.jobs()?;
        Ok(grid)
    }

    /// Every job, arm by arm, seed by seed.
    pub fn jobs(&self) -> Result<Vec<Job>, GridError> {
        let mut jobs = Vec::new();
        for (i, arm) in self.arms.iter().enumerate() {
            let arm_error = |detail: String| GridError::Arm {
                arm: arm.name.clone(),
                detail,
            };
            let channels = self.dataset.channels();
            let classes = self.dataset.num_classes(crate::data::Cifar100Label::Fine);
            let model = MognetConfig::preset(self.preset, channels, classes);
            let model = overridden(&model, [&self.model, &arm.model]).map_err(arm_error)?;
            model
                .spec()
                .validate()
                .map_err(|e| arm_error(e.to_string()))?;
            let train = TrainConfig::new(self.dataset, self.data_dir.clone());
            let train = overridden(&train, [&self.train, &arm.train]).map_err(arm_error)?;
            for &seed in &self.seeds {
                let run = RunConfig {
                    model: model.clone().with_seed(seed),
                    train: train.clone().with_seed(seed),
                };
                jobs.push(Job {
                    arm: i,
                    name: arm.name.clone(),
                    seed,
                    run,
                });
            }
        }
        Ok(jobs)
    }
}

/// `K/N`: the K-th of N shards (1-based); job `j` belongs to shard `j mod N + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, 1..=n.
    pub k: usize,
    /// Shards in all.
    pub n: usize,
}

impl Shard {
    /// Every job.
    pub const ALL: Shard = Shard { k: 1, n: 1 };

    /// Parses `K/N`.
    pub fn parse(text: &str) -> Result<Shard, GridError> {
        let bad = || GridError::Shard(text.to_string());
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let (k, n): (usize, usize) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if n == 0 || k == 0 || k > n {
            return Err(bad());
        }
        Ok(Shard { k, n })
    }

    /// Whether job `index` (in grid order) is this shard's.
    pub fn takes(&self, index: usize) -> bool {
        index % self.n == self.k - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn grid_text() -> String {
        r#"{
            "dataset": "fashion-mnist", "data_dir": "data", "preset": "mognet-s",
            "seeds": [1, 2, 3],
            "train": { "epochs": 4, "limit_train": 1000 },
            "arms": [
                { "name": "mognet" },
                { "name": "prng", "model": { "pw2": "prng" } },
                { "name": "quantile", "model": { "btq": { "mode": "quantile" } } },
                { "name": "no-reg", "train": { "reg_lambda": 0.0, "epochs": 5 } }
            ]
        }"#
        .into()
    }

    fn grid() -> Grid {
        serde_json::from_str(&grid_text()).unwrap()
    }

    #[test]
    fn arms_times_seeds_with_overrides_merged() {
        let jobs = grid().jobs().unwrap();
        assert_eq!(jobs.len(), 12);
        assert_eq!((jobs[4].name.as_str(), jobs[4].seed), ("prng", 2));
        assert_eq!(jobs[4].run.model.pw2, mognet_core::Pw2Kind::Prng);
        assert_eq!(jobs[4].run.model.seed, 2);
        assert_eq!(jobs[4].run.train.seed, 2);
        // Nested objects merge key by key: the quantile arm keeps BTQ's other defaults.
        let q = &jobs[6].run.model.btq;
        assert_eq!(q.mode, mognet_core::ThresholdMode::Quantile);
        assert_eq!(q.delta, mognet_core::BtqConfig::new().delta);
        // Grid-wide overrides apply to every arm; an arm's own come after them.
        assert_eq!(jobs[0].run.train.epochs, 4);
        assert_eq!(jobs[9].run.train.epochs, 5);
        assert_eq!(jobs[9].run.train.reg_lambda, 0.0);
        assert!(jobs.iter().all(|j| j.run.train.limit_train == Some(1000)));
        assert_eq!(jobs[0].dir(Path::new("s")), Path::new("s/mognet/seed-1"));
    }

    #[test]
    fn bad_overrides_name_the_arm_and_field() {
        let mut g = grid();
        g.arms[1].model = serde_json::json!({ "pw3": "prng" });
        let err = g.jobs().unwrap_err().to_string();
        assert!(err.contains("arm prng") && err.contains("pw3"), "{err}");
        let mut g = grid();
        g.arms[1].model = serde_json::json!({ "stages": [] });
        let err = g.jobs().unwrap_err().to_string();
        assert!(err.contains("arm prng"), "{err}");
    }

    #[test]
    fn shards_partition_the_jobs() {
        let jobs = grid().jobs().unwrap().len();
        for n in 1..=5 {
            let mut owner = vec![0; jobs];
            for k in 1..=n {
                let shard = Shard::parse(&format!("{k}/{n}")).unwrap();
                for (j, o) in owner.iter_mut().enumerate() {
                    if shard.takes(j) {
                        *o += 1;
                    }
                }
            }
            assert!(owner.iter().all(|&o| o == 1), "{n} shards: {owner:?}");
        }
        for bad in ["0/3", "4/3", "1/0", "x/2", "2", ""] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }
}
