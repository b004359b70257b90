//! Choosing where the model runs, at run time.

use std::fmt;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::error::{ModelError, Result};

/// The compute backend for a model, picked on the command line or in a manifest.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// flex, burn's pure-Rust CPU backend (always built).
    Cpu,
    /// wgpu (Vulkan/Metal/DX12); needs the `wgpu` cargo feature.
    Wgpu,
    /// CUDA; needs the `cuda` cargo feature and an NVIDIA driver.
    Cuda,
    /// The best backend built in and present: CUDA, else wgpu on a hardware GPU, else the CPU.
    /// A software Vulkan adapter (lavapipe) does not count: it is far slower than flex.
    #[default]
    Auto,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cpu => "cpu",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
            Self::Auto => "auto",
        })
    }
}

impl std::str::FromStr for Backend {
    type Err = String;

    /// `cpu`, `wgpu`, `cuda` or `auto`, in any case.
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Self::Cpu),
            "wgpu" => Ok(Self::Wgpu),
            "cuda" => Ok(Self::Cuda),
            "auto" => Ok(Self::Auto),
            _ => Err(format!(
                "unknown backend `{text}`; use cpu, wgpu, cuda or auto"
            )),
        }
    }
}

impl Backend {
    /// The device to run on, or an error saying how to get the requested backend.
    pub fn device(self) -> Result<Device> {
        match self {
            Self::Cpu => Ok(Device::flex()),
            Self::Wgpu => wgpu_device(),
            Self::Cuda => cuda_device(),
            Self::Auto => Ok(cuda_device()
                .ok()
                .or_else(wgpu_hardware_device)
                .unwrap_or_else(Device::flex)),
        }
    }

    /// The device with ordinal `ordinal` among this backend's GPUs (`None`: [`Backend::device`]),
    /// for runs that give each arm a GPU of its own (`run --devices 0,1`).
    pub fn device_at(self, ordinal: Option<usize>) -> Result<Device> {
        let Some(ordinal) = ordinal else {
            return self.device();
        };
        match self.resolve()? {
            Self::Cuda => cuda_device_at(ordinal),
            Self::Wgpu => wgpu_device_at(ordinal),
            other => Err(ModelError::Backend {
                backend: "cpu",
                message: format!(
                    "device {ordinal} was asked for, but the backend is {other}: devices number                      GPUs (use --backend cuda or wgpu)"
                ),
            }),
        }
    }

    /// The backend [`Backend::device`] resolves `self` to (`auto` becomes `cuda`, `wgpu` or `cpu`).
    pub fn resolve(self) -> Result<Self> {
        match self {
            Self::Auto => Ok(if cuda_device().is_ok() {
                Self::Cuda
            } else if wgpu_hardware_device().is_some() {
                Self::Wgpu
            } else {
                Self::Cpu
            }),
            other => other.device().map(|_| other),
        }
    }
}

/// The wgpu device and whether its adapter is real hardware (not a CPU rasteriser such as
/// lavapipe or llvmpipe).
#[cfg(feature = "wgpu")]
fn wgpu_adapter() -> std::result::Result<(Device, bool), String> {
    use burn::tensor::wgpu::{WgpuInitError, wgpu::DeviceType};
    // Initialise explicitly, once per process, so a machine without a Vulkan/Metal adapter
    // gets an error instead of a panic at the first tensor operation.
    static ADAPTER: std::sync::OnceLock<std::result::Result<(Device, bool), String>> =
        std::sync::OnceLock::new();
    ADAPTER
        .get_or_init(|| match Device::wgpu_options().init_with_setup() {
            Ok((device, setup)) => Ok((
                device,
                setup.adapter.get_info().device_type != DeviceType::Cpu,
            )),
            // Something in this process already brought the runtime up (e.g. a `Device::default()`
            // of a wgpu build): the adapter exists, so its lazily-bound device is the same one.
            Err(WgpuInitError::Registration { .. }) => {
                Ok((Device::wgpu(burn::tensor::DeviceKind::DefaultDevice), true))
            }
            Err(e) => Err(e.to_string()),
        })
        .clone()
}

#[cfg(feature = "wgpu")]
fn wgpu_device() -> Result<Device> {
    wgpu_adapter().map(|(device, _)| device).map_err(|e| ModelError::Backend {
        backend: "wgpu",
        message: format!("{e} (on Linux, install a Vulkan driver: Debian's `mesa-vulkan-drivers` or the GPU vendor's)"),
    })
}

#[cfg(feature = "wgpu")]
fn wgpu_device_at(ordinal: usize) -> Result<Device> {
    // Brings the runtime up (and checks an adapter exists) before binding another GPU.
    wgpu_device()?;
    Ok(Device::wgpu(burn::tensor::DeviceKind::DiscreteGpu(ordinal)))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device_at(_ordinal: usize) -> Result<Device> {
    wgpu_device()
}

#[cfg(feature = "wgpu")]
fn wgpu_hardware_device() -> Option<Device> {
    wgpu_adapter()
        .ok()
        .filter(|(_, hardware)| *hardware)
        .map(|(device, _)| device)
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_hardware_device() -> Option<Device> {
    None
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device() -> Result<Device> {
    Err(ModelError::Backend {
        backend: "wgpu",
        message: "this binary was built without it; rebuild with `--features wgpu`".into(),
    })
}

fn cuda_device() -> Result<Device> {
    cuda_device_at(0)
}

#[cfg(feature = "cuda")]
fn cuda_device_at(ordinal: usize) -> Result<Device> {
    // cudarc panics at first use when no driver is present: probe inside catch_unwind.
    let probe = std::panic::catch_unwind(|| {
        let device = Device::cuda(ordinal);
        let _ = burn::tensor::Tensor::<1>::zeros([1], &device).into_data();
        device
    });
    probe.map_err(|_| ModelError::Backend {
        backend: "cuda",
        message: format!(
            "no usable CUDA device {ordinal} (is the NVIDIA driver installed, and are there that many GPUs?)"
        ),
    })
}

#[cfg(not(feature = "cuda"))]
fn cuda_device_at(_ordinal: usize) -> Result<Device> {
    Err(ModelError::Backend {
        backend: "cuda",
        message: "this binary was built without it; rebuild with `--features cuda`".into(),
    })
}
