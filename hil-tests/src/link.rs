//! The rig's end of the link: starting (and restarting) the DUT, the TCP connection
//! either way round, numbered sends, and a receiver thread that decodes what the DUT
//! sends and timestamps it on arrival.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use cadence_runtime::wire::payload::{
    self, Ack, Detection, Hello, Outcome, Stream, Summary, TimingRecord,
};
use cadence_runtime::wire::{self, Decoder, DecoderStats, HEADER_LEN, Kind};
use thiserror::Error;

use crate::rig::{DutSpec, TransportKind};

/// Why the DUT cannot be started, reached or talked to.
#[derive(Debug, Error)]
pub enum LinkError {
    /// The DUT command cannot be run.
    #[error("cannot start the DUT `{program}`: {source} (build it first; see tools/hil.sh)")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The DUT exited before the rig could talk to it.
    #[error("the DUT exited ({status}) before {stage}; see its output (dut-<n>.log with --report)")]
    Exited {
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What the rig was waiting for.
        stage: &'static str,
    },
    /// Nothing arrived in time.
    #[error(
        "no {what} from the DUT within {timeout:?}; raise the timeout or check the DUT's output"
    )]
    Timeout {
        /// What was awaited.
        what: &'static str,
        /// How long the rig waited.
        timeout: Duration,
    },
    /// A socket operation failed.
    #[error("{action} `{address}`: {source}")]
    Socket {
        /// What the rig did.
        action: &'static str,
        /// The address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// The DUT hung up or the connection broke while the rig was sending.
    #[error("sending to the DUT failed: {0} (did it crash? see its output)")]
    Send(std::io::Error),
    /// The DUT's log file cannot be made.
    #[error("cannot write the DUT's log `{path}`: {source}")]
    Log {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The DUT's address has no `{{port}}` to fill in and is not a valid address.
    #[error(
        "the DUT address `{0}` is not HOST:PORT (use 127.0.0.1:{{port}} for a port the rig picks)"
    )]
    Address(String),
}

/// What the receiver thread hands the rig, stamped with its arrival.
#[derive(Clone, Debug)]
pub enum Incoming {
    /// The DUT booted.
    Hello(Hello),
    /// A control message was acknowledged.
    Ack {
        /// Its kind's code.
        kind: u16,
        /// Its sequence number.
        seq: u32,
    },
    /// A frame's detections.
    Detections {
        /// The frame's sequence number.
        frame_seq: u32,
        /// Its stream.
        stream: Stream,
        /// What the DUT detected.
        detections: Vec<Detection>,
    },
    /// A frame's timing record.
    Timing {
        /// The record.
        record: TimingRecord,
        /// Its stream.
        stream: Stream,
        /// Its outcome.
        outcome: Outcome,
    },
    /// The DUT's counters, answering `Stop`.
    Summary(Summary),
    /// A message from the DUT that the rig could not use (damaged, or a payload of
    /// the wrong layout), with why.
    Problem(String),
    /// The DUT hung up; the decoder's counts of what arrived on this connection.
    Closed(DecoderStats),
}

/// The link to one running DUT instance.
pub struct Connection {
    stream: TcpStream,
    seq: u32,
    buf: Vec<u8>,
    /// What the DUT sent, in arrival order.
    pub incoming: Receiver<(Instant, Incoming)>,
    receiver: Option<std::thread::JoinHandle<()>>,
}

/// Starts the DUT (if the rig file gives a command) and connects to it.
pub struct Launcher {
    spec: DutSpec,
    bin: PathBuf,
    models: PathBuf,
    /// Where each started instance's output goes (`dut-<n>.log`); none: stderr.
    log_dir: Option<PathBuf>,
    starts: usize,
    child: Option<Child>,
}

impl Launcher {
    /// A launcher for `spec`; `{bin}` expands to `bin`, `{models}` to `models`. Each
    /// instance's standard output and error go to `log_dir/dut-<n>.log` (a firmware's
    /// binary log among them), or without `log_dir` its error output to the rig's.
    pub fn new(spec: &DutSpec, bin: &Path, models: &Path, log_dir: Option<&Path>) -> Self {
        Self {
            spec: spec.clone(),
            bin: bin.to_owned(),
            models: models.to_owned(),
            log_dir: log_dir.map(Path::to_owned),
            starts: 0,
            child: None,
        }
    }

    /// Starts the DUT and connects; returns the connection with the `Hello` not yet
    /// read (it is the first incoming message).
    pub fn start(&mut self) -> Result<Connection, LinkError> {
        let timeout = Duration::from_secs_f64(self.spec.hello_timeout_s);
        let deadline = Instant::now() + timeout;
        let address = self.spec.address.clone();
        let stream = match self.spec.transport {
            TransportKind::TcpConnect => {
                let port = free_port(&address)?;
                let address = address.replace("{port}", &port.to_string());
                self.spawn(port)?;
                self.connect(&address, deadline, timeout)?
            }
            TransportKind::TcpListen => {
                let bind = address.replace("{port}", "0");
                let (listener, port) = listen_on_any_port(&bind, "listening on")?;
                self.spawn(port)?;
                self.accept(&listener, &bind, deadline, timeout)?
            }
        };
        Connection::new(stream, &address)
    }

    /// Kills the DUT process (a crash, as the link sees it) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Already exited is fine: the point is that it is gone.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the rig started the DUT (and so can restart it).
    pub fn owns_process(&self) -> bool {
        !self.spec.command.is_empty()
    }

    fn spawn(&mut self, port: u16) -> Result<(), LinkError> {
        let Some((program, args)) = self.spec.command.split_first() else {
            return Ok(());
        };
        let expand = |s: &str| {
            s.replace("{port}", &port.to_string())
                .replace("{bin}", &self.bin.to_string_lossy())
                .replace("{models}", &self.models.to_string_lossy())
        };
        let program = expand(program);
        let (stdout, stderr) = match &self.log_dir {
            Some(dir) => {
                let path = dir.join(format!("dut-{}.log", self.starts));
                let log_error = |source| LinkError::Log {
                    path: path.clone(),
                    source,
                };
                std::fs::create_dir_all(dir).map_err(log_error)?;
                let file = std::fs::File::create(&path).map_err(log_error)?;
                let copy = file.try_clone().map_err(log_error)?;
                (Stdio::from(file), Stdio::from(copy))
            }
            None => (Stdio::null(), Stdio::inherit()),
        };
        self.starts += 1;
        let child = Command::new(&program)
            .args(args.iter().map(|a| expand(a)))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|source| LinkError::Spawn {
                program: program.clone(),
                source,
            })?;
        self.child = Some(child);
        Ok(())
    }

    fn exited(&mut self, stage: &'static str) -> Result<(), LinkError> {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => {
                self.child = None;
                Err(LinkError::Exited { status, stage })
            }
            _ => Ok(()),
        }
    }

    fn connect(
        &mut self,
        address: &str,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<TcpStream, LinkError> {
        loop {
            match TcpStream::connect(address) {
                Ok(stream) => return Ok(stream),
                Err(_) if Instant::now() < deadline => {
                    self.exited("it accepted a connection")?;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(_) => {
                    return Err(LinkError::Timeout {
                        what: "accepted connection",
                        timeout,
                    });
                }
            }
        }
    }

    fn accept(
        &mut self,
        listener: &TcpListener,
        address: &str,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<TcpStream, LinkError> {
        let socket_error = |source| LinkError::Socket {
            action: "accepting on",
            address: address.to_owned(),
            source,
        };
        listener.set_nonblocking(true).map_err(socket_error)?;
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).map_err(socket_error)?;
                    return Ok(stream);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(LinkError::Timeout {
                            what: "connection",
                            timeout,
                        });
                    }
                    self.exited("it connected")?;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(socket_error(e)),
            }
        }
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free port for `address`'s host (the OS picks one; it is released again for the
/// DUT to listen on), or the port `address` names when it has no `{port}`.
fn free_port(address: &str) -> Result<u16, LinkError> {
    if !address.contains("{port}") {
        return address
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .ok_or_else(|| LinkError::Address(address.to_owned()));
    }
    let (_listener, port) =
        listen_on_any_port(&address.replace("{port}", "0"), "finding a free port on")?;
    Ok(port)
}

/// A listener on `bind` (port 0: the OS picks one) and the port it got; `action` says
/// in an error what the rig was doing.
fn listen_on_any_port(bind: &str, action: &'static str) -> Result<(TcpListener, u16), LinkError> {
    let socket_error = |source| LinkError::Socket {
        action,
        address: bind.to_owned(),
        source,
    };
    let listener = TcpListener::bind(bind).map_err(socket_error)?;
    let port = listener.local_addr().map_err(socket_error)?.port();
    Ok((listener, port))
}

/// The largest message a DUT sends: a full detections payload.
const RECEIVE_CAPACITY: usize = HEADER_LEN
    + core::mem::size_of::<payload::ResultHeader>()
    + payload::MAX_DETECTIONS * core::mem::size_of::<Detection>();

impl Connection {
    fn new(stream: TcpStream, address: &str) -> Result<Self, LinkError> {
        let socket_error = |source| LinkError::Socket {
            action: "setting up the connection to",
            address: address.to_owned(),
            source,
        };
        stream.set_nodelay(true).map_err(socket_error)?;
        let reader = stream.try_clone().map_err(socket_error)?;
        let (sender, incoming) = mpsc::channel();
        let receiver = std::thread::Builder::new()
            .name("rig-receiver".into())
            .spawn(move || receive(reader, &sender))
            .map_err(socket_error)?;
        Ok(Self {
            stream,
            seq: 0,
            buf: vec![0; HEADER_LEN + wire::MAX_PAYLOAD_LEN],
            incoming,
            receiver: Some(receiver),
        })
    }

    /// Continues numbering from `seq` (a restarted DUT sees the rig's numbering go on).
    pub fn continue_from(&mut self, seq: u32) {
        self.seq = seq;
    }

    /// The sequence number the next message gets.
    pub fn next_seq(&self) -> u32 {
        self.seq
    }

    /// Encodes a message of `kind` with the next sequence number, without sending it;
    /// returns the number and the bytes (in the connection's buffer).
    pub fn encode(&mut self, kind: Kind, body: &[u8]) -> (u32, &mut [u8]) {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        // The rig only builds payloads up to MAX_PAYLOAD_LEN (see `streams`), which the
        // buffer holds.
        let len = wire::encode(kind, seq, body, &mut self.buf).unwrap_or(0);
        (seq, &mut self.buf[..len])
    }

    /// Uses up the next sequence number without sending anything (a lost message).
    pub fn skip_seq(&mut self) -> u32 {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        seq
    }

    /// Sends `kind` carrying `body`; returns its sequence number.
    pub fn send(&mut self, kind: Kind, body: &[u8]) -> Result<u32, LinkError> {
        let (seq, _) = self.encode(kind, body);
        self.write_encoded()?;
        Ok(seq)
    }

    /// Sends the message [`Connection::encode`] left in the buffer, `times` times.
    pub fn write_encoded_times(&mut self, times: usize) -> Result<(), LinkError> {
        for _ in 0..times {
            self.write_encoded()?;
        }
        Ok(())
    }

    fn write_encoded(&mut self) -> Result<(), LinkError> {
        let len = encoded_len(&self.buf);
        self.stream
            .write_all(&self.buf[..len])
            .map_err(LinkError::Send)
    }

    /// Sends raw bytes (part of an encoded message).
    pub fn write_raw(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        self.stream.write_all(bytes).map_err(LinkError::Send)
    }

    /// Waits up to `timeout` for the next incoming message.
    pub fn next(&self, timeout: Duration) -> Option<(Instant, Incoming)> {
        // Timed out, or the receiver ended (its last message was `Closed`).
        self.incoming.recv_timeout(timeout).ok()
    }

    /// Closes the rig's side, waits for the receiver thread to see the end of the
    /// stream, and returns what arrived meanwhile (ending with [`Incoming::Closed`]).
    pub fn close(mut self) -> Vec<(Instant, Incoming)> {
        // Already closed by the DUT is fine: either way the receiver sees the end.
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        if let Some(thread) = self.receiver.take() {
            // A receiver that panicked has forwarded what it could.
            let _ = thread.join();
        }
        self.incoming.try_iter().collect()
    }
}

/// Length of the encoded message at the front of `buf` (header plus payload).
fn encoded_len(buf: &[u8]) -> usize {
    use zerocopy::FromBytes;
    wire::Header::read_from_prefix(buf)
        .map(|(h, _)| HEADER_LEN + h.payload_len.get() as usize)
        .unwrap_or(0)
}

/// The receiver thread: decodes the DUT's messages and forwards them with their
/// arrival time until the connection closes.
fn receive(mut stream: TcpStream, sender: &Sender<(Instant, Incoming)>) {
    let mut decoder: Box<Decoder<{ 4 * RECEIVE_CAPACITY }>> = Box::new(Decoder::new());
    let mut chunk = vec![0; 64 * 1024];
    let forward = |message| sender.send((Instant::now(), message)).is_ok();
    loop {
        let read = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => 0,
            Ok(read) => read,
        };
        if read == 0 {
            decoder.finish();
        }
        let mut offset = 0;
        loop {
            offset += decoder.push(&chunk[offset..read]);
            while let Some(outcome) = decoder.next_frame() {
                let message = match outcome {
                    Ok(frame) => parse(frame.kind, frame.payload),
                    Err(problem) => Incoming::Problem(problem.to_string()),
                };
                if !forward(message) {
                    return;
                }
            }
            if offset >= read {
                break;
            }
        }
        if read == 0 {
            forward(Incoming::Closed(decoder.stats()));
            return;
        }
    }
}

fn parse(kind: Kind, body: &[u8]) -> Incoming {
    let parsed = match kind {
        Kind::Hello => payload::read_fixed::<Hello>(kind, body).map(|h| Incoming::Hello(*h)),
        Kind::Ack => payload::read_fixed::<Ack>(kind, body).map(|a| Incoming::Ack {
            kind: a.kind.get(),
            seq: a.seq.get(),
        }),
        Kind::Detections => payload::read_detections(body).map(|(header, stream, detections)| {
            Incoming::Detections {
                frame_seq: header.frame_seq.get(),
                stream,
                detections: detections.to_vec(),
            }
        }),
        Kind::TimingRecord => {
            payload::read_timing_record(body).map(|(record, stream, outcome)| Incoming::Timing {
                record: *record,
                stream,
                outcome,
            })
        }
        Kind::Summary => payload::read_fixed::<Summary>(kind, body).map(|s| Incoming::Summary(*s)),
        Kind::CameraFrame | Kind::LidarFrame | Kind::Start | Kind::Stop | Kind::Reset => {
            return Incoming::Problem(format!(
                "the DUT sent a {kind:?} message, which only a rig sends"
            ));
        }
    };
    parsed.unwrap_or_else(|e| Incoming::Problem(e.to_string()))
}
