//! `cadence-dut`: the host pipeline as a device under test for the HIL rig
//! (`cadence-hil`). It loads the camera and/or lidar packages, says `Hello` on every
//! connection and serves frames until the rig hangs up (or, listening, forever).
//!
//! ```text
//! cadence-dut --listen 127.0.0.1:7000 --camera models/camera/camera_det.cpk \
//!     --lidar-pfn models/lidar/pfn.cpk --lidar-backbone models/lidar/backbone.cpk
//! ```
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use cadence_host::dut::{Dut, DutModels, Transport};
use clap::{ArgGroup, Parser};

/// Serves camera and lidar frames from the HIL rig with the host pipelines.
#[derive(Parser)]
#[command(name = "cadence-dut", version)]
#[command(group(ArgGroup::new("transport").required(true).args(["listen", "connect", "stdio"])))]
struct Args {
    /// Listen on this TCP address (e.g. 127.0.0.1:7000) and serve each rig connection.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Connect to a rig listening on this TCP address and serve that connection.
    #[arg(long, value_name = "ADDR")]
    connect: Option<String>,
    /// Speak on standard input and output.
    #[arg(long)]
    stdio: bool,
    /// The camera detector package.
    #[arg(long, value_name = "PKG")]
    camera: Option<PathBuf>,
    /// The lidar pillar feature net package (with `--lidar-backbone`).
    #[arg(long, value_name = "PKG", requires = "lidar_backbone")]
    lidar_pfn: Option<PathBuf>,
    /// The lidar backbone package (with `--lidar-pfn`).
    #[arg(long, value_name = "PKG", requires = "lidar_pfn")]
    lidar_backbone: Option<PathBuf>,
    /// The name the DUT gives in its `Hello` (at most 16 bytes are sent).
    #[arg(long, default_value = "cadence-dut")]
    name: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let transport = match (args.listen, args.connect) {
        (Some(addr), _) => Transport::Listen(addr),
        (None, Some(addr)) => Transport::Connect(addr),
        (None, None) => Transport::Stdio,
    };
    let models = DutModels {
        camera: args.camera,
        lidar: args.lidar_pfn.zip(args.lidar_backbone),
    };
    let result = Dut::load(&args.name, &models).and_then(|mut dut| dut.run(&transport));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cadence-dut: {e}");
            ExitCode::FAILURE
        }
    }
}
