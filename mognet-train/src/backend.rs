//! Choosing the compute device: WGPU on a GPU (optionally pinned to Vulkan's SPIR-V compiler),
//! CUDA, Flex (our CPU default) or ndarray.

use burn::tensor::{Device, DeviceKind};
use serde::{Deserialize, Serialize};

/// The backend a user asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    /// WGPU when a hardware GPU adapter exists, else Flex.
    Auto,
    /// WGPU (Vulkan, Metal or DX12; on a machine without a GPU, a software adapter such as
    /// Mesa's lavapipe).
    Wgpu,
    /// WGPU pinned to Vulkan, with its SPIR-V compiler (needs the `vulkan` cargo feature).
    Vulkan,
    /// NVIDIA CUDA (needs the `cuda` cargo feature and an NVIDIA driver at run time).
    Cuda,
    /// Burn's pure-Rust CPU backend.
    Flex,
    /// Burn's ndarray CPU backend (deprecated upstream; kept as an option).
    Ndarray,
}

/// A backend this build was compiled without.
#[derive(Debug, thiserror::Error)]
#[error(
    "this build has no {backend} backend: rebuild with `--features {feature}` (cargo build -p mognet-train --release --features {feature})"
)]
pub struct MissingBackend {
    /// The backend asked for.
    pub backend: &'static str,
    /// The cargo feature that brings it.
    pub feature: &'static str,
}

/// The device picked and a line saying why, for the user.
#[derive(Debug, Clone)]
pub struct Selected {
    /// The device (without autodiff).
    pub device: Device,
    /// What was chosen, e.g. `wgpu (NVIDIA H100)` or `flex (cpu)`.
    pub description: String,
}

/// Names of hardware GPU adapters WGPU can reach. Software adapters (llvmpipe) are no card and
/// are left out.
pub fn hardware_gpus() -> Vec<String> {
    std::panic::catch_unwind(Device::enumerate_physical)
        .map(|gpus| gpus.into_iter().map(|g| g.name).collect())
        .unwrap_or_default()
}

impl BackendChoice {
    /// Resolves the choice to a device.
    ///
    /// # Errors
    /// [`MissingBackend`] for `Vulkan` or `Cuda` in a build without that feature.
    pub fn select(self) -> Result<Selected, MissingBackend> {
        Ok(match self {
            BackendChoice::Flex => Selected {
                device: Device::flex(),
                description: "flex (cpu)".into(),
            },
            #[allow(deprecated)]
            BackendChoice::Ndarray => Selected {
                device: Device::ndarray(),
                description: "ndarray (cpu)".into(),
            },
            BackendChoice::Wgpu => described(Device::wgpu(DeviceKind::DefaultDevice), "wgpu"),
            BackendChoice::Vulkan => vulkan()?,
            BackendChoice::Cuda => cuda()?,
            BackendChoice::Auto => match hardware_gpus().into_iter().next() {
                Some(_) => BackendChoice::Wgpu.select()?,
                None => {
                    let mut s = BackendChoice::Flex.select()?;
                    s.description = "flex (cpu; no hardware GPU adapter found)".into();
                    s
                }
            },
        })
    }
}

fn described(device: Device, api: &str) -> Selected {
    let name = device
        .identity()
        .map(|i| i.name.to_string())
        .unwrap_or_else(|| "unknown adapter".into());
    Selected {
        device,
        description: format!("{api} ({name})"),
    }
}

#[cfg(feature = "vulkan")]
fn vulkan() -> Result<Selected, MissingBackend> {
    Ok(described(
        Device::vulkan(DeviceKind::DefaultDevice),
        "vulkan",
    ))
}

#[cfg(not(feature = "vulkan"))]
fn vulkan() -> Result<Selected, MissingBackend> {
    Err(MissingBackend {
        backend: "Vulkan",
        feature: "vulkan",
    })
}

#[cfg(feature = "cuda")]
fn cuda() -> Result<Selected, MissingBackend> {
    Ok(described(Device::cuda(0), "cuda"))
}

#[cfg(not(feature = "cuda"))]
fn cuda() -> Result<Selected, MissingBackend> {
    Err(MissingBackend {
        backend: "CUDA",
        feature: "cuda",
    })
}
