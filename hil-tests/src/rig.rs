//! The rig file: which DUT, which streams, which reference, which faults.
//!
//! ```toml
//! name = "host"
//!
//! [dut]
//! # Started by the rig (omit `command` to connect to a DUT that already runs).
//! # Placeholders: {port} (a free TCP port the rig picked), {bin} (the folder holding
//! # cadence-hil, where cargo also puts cadence-dut), {models} (--models, else "models").
//! command = ["{bin}/cadence-dut", "--listen", "127.0.0.1:{port}", "--camera", "{models}/camera/camera_det.cpk"]
//! transport = "tcp-connect"        # rig connects to `address`; "tcp-listen": the DUT connects to it
//! address = "127.0.0.1:{port}"
//! hello_timeout_s = 60             # from start (or restart) to the DUT's Hello
//!
//! [reference]                      # packages the rig runs itself for the expected outputs
//! camera = "{models}/camera/camera_det.cpk"
//! lidar_pfn = "{models}/lidar/pfn.cpk"
//! lidar_backbone = "{models}/lidar/backbone.cpk"
//! # lidar = "out/firmware/bev_classifier.cpk"   # pipeline = "mcu": the one-package model
//! score_tolerance = 1e-4           # |score difference| allowed per detection
//! box_tolerance = 1e-3             # |coordinate difference| allowed per box value
//!
//! [run]
//! seconds = 4.0                    # how long frames are streamed (wall clock)
//! time_scale = 1.0                 # > 1 replays slower: periods and deadlines x time_scale
//! answer_timeout_s = 10            # after the last frame, how long to wait for answers
//!
//! [[stream]]
//! kind = "camera"                  # or "lidar"
//! rate_hz = 30.0
//! deadline_ms = 33.3
//! data = "models/data/camera"      # a .npy file or a folder of frame_<n>.npy / sweep_<n>.npy
//! width = 320                      # camera: frames are resized to width x height
//! height = 320
//! # max_points = 20000             # lidar: points kept per sweep (default: what one message holds)
//! # pipeline = "mcu"               # the microcontroller's frame paths (cadence_models::mcu):
//! #                                # camera frames are centre crops (ROIs) of the recordings
//!
//! [[fault]]
//! kind = "drop-frames"             # drop-frames, corrupt-frame, duplicate-frame, delay, stall, restart
//! stream = "camera"                # the frame faults' stream
//! at_s = 1.0                       # first frame released at or after this time
//! count = 2                        # drop-frames: frames dropped in a row
//! # delay_ms = 50                  # delay: how late the frame is sent
//! # duration_ms = 300              # stall: how long the link carries no bytes
//! ```
//!
//! Paths (other than in the command) are relative to the current directory: run the
//! rig from the repository root, as the bundled rig files assume.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

/// Why a rig file cannot be used.
#[derive(Debug, Error)]
pub enum RigFileError {
    /// The file cannot be read.
    #[error("cannot read rig file `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for a rig.
    #[error("rig file `{path}` is malformed: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What and where.
        source: Box<toml::de::Error>,
    },
    /// A value is out of range or inconsistent with another.
    #[error("rig file `{path}`: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What to change.
        reason: String,
    },
}

/// A parsed, checked rig file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rig {
    /// The rig's name: the JUnit test suite's name.
    pub name: String,
    /// The device under test.
    pub dut: DutSpec,
    /// Where the expected outputs come from.
    pub reference: ReferenceSpec,
    /// Timing of the run.
    pub run: RunSpec,
    /// The sensor streams sent.
    #[serde(rename = "stream")]
    pub streams: Vec<StreamSpec>,
    /// The faults injected.
    #[serde(default, rename = "fault")]
    pub faults: Vec<FaultSpec>,
}

/// How the DUT is started and reached.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DutSpec {
    /// The command that starts it (program, then arguments), with placeholders; none
    /// for a DUT that already runs (it then cannot be restarted).
    #[serde(default)]
    pub command: Vec<String>,
    /// Who opens the TCP connection.
    pub transport: TransportKind,
    /// The TCP address: the DUT's (`tcp-connect`) or the rig's (`tcp-listen`).
    pub address: String,
    /// Seconds from start to the DUT's `Hello`.
    #[serde(default = "default_hello_timeout")]
    pub hello_timeout_s: f64,
}

fn default_hello_timeout() -> f64 {
    60.0
}

/// Who opens the TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransportKind {
    /// The DUT listens; the rig connects (retrying until the hello timeout).
    TcpConnect,
    /// The rig listens; the DUT connects (QEMU's `-serial tcp:HOST:PORT`).
    TcpListen,
}

/// The packages the rig runs on its own CPU for the expected outputs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceSpec {
    /// The camera detector.
    pub camera: Option<String>,
    /// The lidar PFN.
    pub lidar_pfn: Option<String>,
    /// The lidar backbone.
    pub lidar_backbone: Option<String>,
    /// The microcontroller's one-package lidar model (`pipeline = "mcu"`).
    pub lidar: Option<String>,
    /// Largest score difference accepted per detection.
    pub score_tolerance: f32,
    /// Largest difference accepted per box value.
    pub box_tolerance: f32,
}

/// Timing of the run.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// Wall-clock seconds of streaming.
    pub seconds: f64,
    /// Slow-motion factor: every period and deadline is multiplied by it, for a DUT
    /// slower than the target it stands in for.
    #[serde(default = "one")]
    pub time_scale: f64,
    /// Seconds to wait for outstanding answers after the last frame.
    #[serde(default = "default_answer_timeout")]
    pub answer_timeout_s: f64,
}

fn one() -> f64 {
    1.0
}

fn default_answer_timeout() -> f64 {
    10.0
}

/// A sensor stream.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSpec {
    /// Camera or lidar.
    pub kind: StreamKind,
    /// Frames per second (before `time_scale`).
    pub rate_hz: f64,
    /// Relative deadline per frame (before `time_scale`).
    pub deadline_ms: f64,
    /// The recorded frames: a `.npy` file or a folder of them.
    pub data: PathBuf,
    /// Camera: width frames are resized to.
    pub width: Option<u16>,
    /// Camera: height frames are resized to.
    pub height: Option<u16>,
    /// Lidar: points kept per sweep.
    pub max_points: Option<u32>,
    /// Which frame path the DUT runs, and so the rig's reference.
    #[serde(default)]
    pub pipeline: PipelineKind,
}

/// The frame path a stream goes through on the DUT (the rig runs the same one for its
/// reference).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PipelineKind {
    /// The host's: the SSD camera detector, the PointPillars lidar chain.
    #[default]
    Host,
    /// The microcontroller's (`cadence_models::mcu`): camera frames are region-of-
    /// interest crops of the recorded images for the ROI classifier; lidar sweeps go
    /// to the BEV cell classifier.
    Mcu,
}

/// A sensor stream's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StreamKind {
    /// Camera images.
    Camera,
    /// Lidar sweeps.
    Lidar,
}

impl StreamKind {
    /// Its name in test cases and reports.
    pub fn name(self) -> &'static str {
        match self {
            StreamKind::Camera => "camera",
            StreamKind::Lidar => "lidar",
        }
    }
}

/// A fault to inject.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// What happens.
    pub kind: FaultKind,
    /// The stream whose frame(s) it hits (frame faults only).
    pub stream: Option<StreamKind>,
    /// When, in seconds from the start of streaming.
    pub at_s: f64,
    /// `drop-frames`: frames dropped in a row.
    pub count: Option<u32>,
    /// `delay`: how late the frame is sent.
    pub delay_ms: Option<f64>,
    /// `stall`: how long the link is silent.
    pub duration_ms: Option<f64>,
}

/// The faults the rig injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Frames are never sent (their sequence numbers are used up: the DUT sees a gap).
    DropFrames,
    /// A frame's payload bytes are flipped after its checksum was computed.
    CorruptFrame,
    /// A frame is sent twice, byte for byte.
    DuplicateFrame,
    /// A frame is sent late.
    Delay,
    /// The link goes silent in the middle of a frame, then carries on.
    Stall,
    /// The DUT process is killed and started again.
    Restart,
}

impl FaultKind {
    /// Its name in the rig file and, prefixed with `fault-`, in test case names.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::DropFrames => "drop-frames",
            FaultKind::CorruptFrame => "corrupt-frame",
            FaultKind::DuplicateFrame => "duplicate-frame",
            FaultKind::Delay => "delay",
            FaultKind::Stall => "stall",
            FaultKind::Restart => "restart",
        }
    }

    /// Whether it hits one stream's frames (and so needs `stream`).
    pub fn hits_frames(self) -> bool {
        !matches!(self, FaultKind::Stall | FaultKind::Restart)
    }
}

impl Rig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, RigFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| RigFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        let rig: Rig = toml::from_str(&text).map_err(|source| RigFileError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        rig.check().map_err(|reason| RigFileError::Invalid {
            path: path.to_owned(),
            reason,
        })?;
        Ok(rig)
    }

    /// The stream of `kind`, if the rig sends it.
    pub fn stream(&self, kind: StreamKind) -> Option<&StreamSpec> {
        self.streams.iter().find(|s| s.kind == kind)
    }

    fn check(&self) -> Result<(), String> {
        let positive = |what: &str, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(())
            } else {
                Err(format!("{what} must be a positive number, got {value}"))
            }
        };
        positive("run.seconds", self.run.seconds)?;
        positive("run.time_scale", self.run.time_scale)?;
        positive("run.answer_timeout_s", self.run.answer_timeout_s)?;
        positive("dut.hello_timeout_s", self.dut.hello_timeout_s)?;
        let tolerances = [self.reference.score_tolerance, self.reference.box_tolerance];
        if tolerances.iter().any(|t| !t.is_finite() || *t < 0.0) {
            return Err("reference tolerances must be finite and not negative".into());
        }
        if self.streams.is_empty() {
            return Err("no [[stream]]: the rig has nothing to send".into());
        }
        for (i, stream) in self.streams.iter().enumerate() {
            let name = stream.kind.name();
            if self.streams[..i].iter().any(|s| s.kind == stream.kind) {
                return Err(format!(
                    "two [[stream]]s of kind `{name}`; give each kind once"
                ));
            }
            positive(&format!("stream `{name}` rate_hz"), stream.rate_hz)?;
            positive(&format!("stream `{name}` deadline_ms"), stream.deadline_ms)?;
            match (stream.kind, stream.pipeline) {
                (StreamKind::Camera, _) => {
                    if !matches!((stream.width, stream.height), (Some(w), Some(h)) if w > 0 && h > 0)
                    {
                        return Err(
                            "the camera stream needs `width` and `height` (the frame size sent)"
                                .into(),
                        );
                    }
                    if self.reference.camera.is_none() {
                        return Err("a camera stream needs `reference.camera`".into());
                    }
                }
                (StreamKind::Lidar, PipelineKind::Mcu) => {
                    if self.reference.lidar.is_none() {
                        return Err("an mcu lidar stream needs `reference.lidar`".into());
                    }
                }
                (StreamKind::Lidar, PipelineKind::Host) => {
                    if self.reference.lidar_pfn.is_none() || self.reference.lidar_backbone.is_none()
                    {
                        return Err(
                            "a lidar stream needs `reference.lidar_pfn` and `reference.lidar_backbone`"
                                .into(),
                        );
                    }
                }
            }
        }
        for fault in &self.faults {
            let name = fault.kind.name();
            if !(fault.at_s.is_finite() && fault.at_s >= 0.0 && fault.at_s < self.run.seconds) {
                return Err(format!(
                    "fault `{name}` at_s = {} is outside the run (0 to {} s)",
                    fault.at_s, self.run.seconds
                ));
            }
            match (fault.kind.hits_frames(), fault.stream) {
                (true, None) => return Err(format!("fault `{name}` needs `stream`")),
                (true, Some(kind)) if self.stream(kind).is_none() => {
                    return Err(format!(
                        "fault `{name}` hits stream `{}`, which the rig does not send",
                        kind.name()
                    ));
                }
                (false, Some(_)) => {
                    return Err(format!("fault `{name}` hits the whole link: drop `stream`"));
                }
                _ => {}
            }
            let needs = |field: &str, present: bool| {
                if present {
                    Ok(())
                } else {
                    Err(format!("fault `{name}` needs `{field}`"))
                }
            };
            match fault.kind {
                FaultKind::DropFrames => needs("count", fault.count.is_some_and(|c| c > 0))?,
                FaultKind::Delay => needs("delay_ms", fault.delay_ms.is_some_and(|d| d > 0.0))?,
                FaultKind::Stall => {
                    needs("duration_ms", fault.duration_ms.is_some_and(|d| d > 0.0))?
                }
                FaultKind::Restart => {
                    if self.dut.command.is_empty() {
                        return Err(
                            "fault `restart` needs `dut.command`: the rig restarts only a DUT it started"
                                .into(),
                        );
                    }
                }
                FaultKind::CorruptFrame | FaultKind::DuplicateFrame => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rigs() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("rigs")
    }

    #[test]
    fn the_bundled_rigs_are_valid() {
        // qemu-aarch64 sends no lidar: the emulated lidar chain is too slow for its rate.
        for (name, streams) in [
            ("host.toml", 2),
            ("qemu-m7.toml", 2),
            ("qemu-aarch64.toml", 1),
        ] {
            let rig = Rig::load(&rigs().join(name)).unwrap();
            assert_eq!(rig.streams.len(), streams, "{name}");
            let kinds: Vec<_> = rig.faults.iter().map(|f| f.kind).collect();
            for kind in [
                FaultKind::DropFrames,
                FaultKind::CorruptFrame,
                FaultKind::Delay,
                FaultKind::Stall,
                FaultKind::Restart,
            ] {
                assert!(kinds.contains(&kind), "{name} lacks {}", kind.name());
            }
        }
    }

    #[test]
    fn two_streams_of_one_kind_are_refused_with_the_reason() {
        let text = std::fs::read_to_string(rigs().join("host.toml")).unwrap();
        let camera_only = text.replacen("kind = \"lidar\"", "kind = \"camera\"", 1);
        let path = std::env::temp_dir().join(format!("rig-{}.toml", std::process::id()));
        std::fs::write(&path, camera_only).unwrap();
        let error = Rig::load(&path).unwrap_err().to_string();
        std::fs::remove_file(&path).unwrap();
        assert!(
            error.contains("two [[stream]]s of kind `camera`"),
            "{error}"
        );
    }
}
