//! One run of a rig: start the DUT, stream the frames at their rates with the faults
//! injected, restart the DUT where asked, stop it and collect its summary. Everything
//! that happens is logged in a [`RunLog`]; judging it is [`crate::checks`]' job.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cadence_runtime::wire::payload::{Detection, Hello, Outcome, Stream, Summary, TimingRecord};
use cadence_runtime::wire::{DecoderStats, HEADER_LEN, Kind};

use crate::link::{Connection, Incoming, Launcher, LinkError};
use crate::rig::{FaultKind, Rig, StreamKind};
use crate::streams::StreamPlan;

/// What happened to a frame on its way out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Sent as it was.
    Sent,
    /// Never sent: its sequence number was used up (`drop-frames`).
    Dropped,
    /// Sent with payload bytes flipped (`corrupt-frame`).
    Corrupted,
    /// Sent twice (`duplicate-frame`).
    Duplicated,
    /// Sent late (`delay`).
    Delayed,
    /// Sent in two parts with the link silent between them (`stall`).
    Split,
    /// Not sent: released while the DUT was being restarted.
    DutDown,
}

/// One frame the rig released.
#[derive(Clone, Debug)]
pub struct FrameLog {
    /// Its stream.
    pub stream: StreamKind,
    /// Its index in the stream (warm-up frames are not counted).
    pub index: usize,
    /// The recorded frame it carries.
    pub sample: usize,
    /// Scheduled release, from the start of streaming.
    pub release: Duration,
    /// When its last byte was written, if it was sent.
    pub sent_at: Option<Instant>,
    /// Its sequence number (also for dropped frames: the number used up).
    pub seq: Option<u32>,
    /// The DUT instance it went to.
    pub epoch: usize,
    /// The fault that hit it (an index into the rig's faults).
    pub fault: Option<usize>,
    /// Sent after a (re)start to warm the DUT up before timing counts.
    pub warmup: bool,
    /// What happened to it.
    pub fate: Fate,
}

/// The DUT's answer to a frame.
#[derive(Clone, Debug)]
pub struct Answer {
    /// Its timing record.
    pub record: TimingRecord,
    /// The record's outcome.
    pub outcome: Outcome,
    /// The detections sent before the record, if any.
    pub detections: Option<Vec<Detection>>,
    /// When the record arrived.
    pub at: Instant,
}

/// One DUT instance: from its start to its end (a restart starts the next).
#[derive(Clone, Debug, Default)]
pub struct Epoch {
    /// Its `Hello`.
    pub hello: Option<Hello>,
    /// Whether it acknowledged `Start`.
    pub start_acked: bool,
    /// Its answer to `Stop` (the last instance only: the others are killed).
    pub summary: Option<Summary>,
    /// Killed by a `restart` fault.
    pub killed: bool,
    /// Sequence numbers the DUT's decoder received intact, in order (control messages
    /// included): the rig predicts the DUT's counters from them.
    pub delivered: Vec<u32>,
    /// Frames sent corrupted.
    pub corrupted: u64,
    /// Frames sent twice.
    pub duplicated: u64,
    /// What the rig's decoder counted on this connection.
    pub rig_link: Option<DecoderStats>,
    /// Messages from the DUT the rig could not use, and protocol violations.
    pub problems: Vec<String>,
}

/// A fault as it was injected.
#[derive(Clone, Debug)]
pub struct FaultLog {
    /// Its index in the rig's faults.
    pub spec: usize,
    /// Its kind.
    pub kind: FaultKind,
    /// When it began and ended.
    pub window: (Instant, Instant),
    /// The frames it hit (indices into [`RunLog::frames`]).
    pub frames: Vec<usize>,
    /// The DUT instance it began in.
    pub epoch: usize,
    /// What went wrong injecting it, if anything.
    pub error: Option<String>,
}

/// Everything that happened in a run.
#[derive(Debug)]
pub struct RunLog {
    /// When streaming started.
    pub started: Instant,
    /// When the run ended.
    pub finished: Instant,
    /// Every frame released, in release order.
    pub frames: Vec<FrameLog>,
    /// The DUT's answers, by frame sequence number.
    pub answers: HashMap<u32, Answer>,
    /// The DUT instances.
    pub epochs: Vec<Epoch>,
    /// The faults injected.
    pub faults: Vec<FaultLog>,
    /// What stopped the run early, if anything.
    pub fatal: Option<String>,
}

impl RunLog {
    /// The frame with sequence number `seq`.
    pub fn frame(&self, seq: u32) -> Option<&FrameLog> {
        self.frames.iter().find(|f| f.seq == Some(seq))
    }
}

struct Runner<'a> {
    rig: &'a Rig,
    plans: &'a [StreamPlan],
    launcher: Launcher,
    log: RunLog,
    /// Detections waiting for their timing record.
    pending: HashMap<u32, Vec<Detection>>,
}

/// Runs `rig` against the DUT `launcher` starts, sending `plans`' frames.
pub fn run(rig: &Rig, plans: &[StreamPlan], launcher: Launcher) -> RunLog {
    let now = Instant::now();
    let mut runner = Runner {
        rig,
        plans,
        launcher,
        log: RunLog {
            started: now,
            finished: now,
            frames: Vec::new(),
            answers: HashMap::new(),
            epochs: Vec::new(),
            faults: Vec::new(),
            fatal: None,
        },
        pending: HashMap::new(),
    };
    if let Err(e) = runner.run() {
        runner.log.fatal = Some(e.to_string());
    }
    runner.launcher.kill();
    runner.log.finished = Instant::now();
    runner.log
}

/// One entry of the send timeline.
enum Item {
    Frame {
        plan: usize,
        index: usize,
        release: Duration,
        fault: Option<usize>,
    },
    Link {
        fault: usize,
        release: Duration,
    },
}

impl Item {
    fn release(&self) -> Duration {
        match self {
            Item::Frame { release, .. } | Item::Link { release, .. } => *release,
        }
    }
}

impl Runner<'_> {
    fn run(&mut self) -> Result<(), LinkError> {
        let mut conn = self.boot(0)?;
        self.start(&mut conn)?;
        self.log.started = Instant::now();
        let timeline = self.timeline();
        let mut stall: Option<usize> = None;
        // Frames released before this moment went to a DUT being restarted.
        let mut down_until = self.log.started;
        for item in &timeline {
            let release_at = self.log.started + item.release();
            self.pump(&conn, release_at, |_| false);
            match *item {
                Item::Link { fault, .. } => match self.rig.faults[fault].kind {
                    FaultKind::Stall => stall = Some(fault),
                    _ => {
                        conn = self.restart(conn, fault)?;
                        down_until = Instant::now();
                    }
                },
                Item::Frame {
                    plan,
                    index,
                    release,
                    fault,
                } => {
                    let slot = self.log.frames.len();
                    if release_at < down_until {
                        self.log_frame(plan, index, release, None, fault, Fate::DutDown);
                        continue;
                    }
                    if let Some(fault) = fault {
                        self.fault_log(fault).frames.push(slot);
                    }
                    self.send_frame(&mut conn, plan, index, release, fault, stall.take())?;
                }
            }
        }
        self.finish(conn)
    }

    /// Starts DUT instance `epoch` (the first, or after a restart): `Hello`, `Start`,
    /// and one warm-up frame per stream, answered.
    fn boot(&mut self, epoch: usize) -> Result<Connection, LinkError> {
        let timeout = Duration::from_secs_f64(self.rig.dut.hello_timeout_s);
        self.log.epochs.push(Epoch::default());
        let conn = self.launcher.start()?;
        let deadline = Instant::now() + timeout;
        if !self.pump(&conn, deadline, |log| log.epochs[epoch].hello.is_some()) {
            return Err(LinkError::Timeout {
                what: "Hello",
                timeout,
            });
        }
        Ok(conn)
    }

    /// After `boot`: `Start` and warm-up (kept apart so a restart can continue the
    /// sequence numbers first).
    fn start(&mut self, conn: &mut Connection) -> Result<(), LinkError> {
        let timeout = Duration::from_secs_f64(self.rig.dut.hello_timeout_s);
        let epoch = self.log.epochs.len() - 1;
        let seq = conn.send(Kind::Start, &[])?;
        self.log.epochs[epoch].delivered.push(seq);
        let deadline = Instant::now() + timeout;
        if !self.pump(conn, deadline, |log| log.epochs[epoch].start_acked) {
            return Err(LinkError::Timeout {
                what: "Ack of Start",
                timeout,
            });
        }
        for plan in 0..self.plans.len() {
            let kind = self.plans[plan].frame_kind();
            let (seq, _) = conn.encode(kind, &self.plans[plan].sample(0).payload);
            conn.write_encoded_times(1)?;
            let slot = self.log.frames.len();
            self.log.frames.push(FrameLog {
                stream: self.plans[plan].kind,
                index: 0,
                sample: 0,
                release: Instant::now().saturating_duration_since(self.log.started),
                sent_at: Some(Instant::now()),
                seq: Some(seq),
                epoch,
                fault: None,
                warmup: true,
                fate: Fate::Sent,
            });
            self.log.epochs[epoch].delivered.push(seq);
            let deadline = Instant::now() + timeout;
            if !self.pump(conn, deadline, |log| log.answers.contains_key(&seq)) {
                self.log.epochs[epoch].problems.push(format!(
                    "warm-up frame {slot} got no answer within {timeout:?}"
                ));
            }
        }
        Ok(())
    }

    fn timeline(&self) -> Vec<Item> {
        let run = Duration::from_secs_f64(self.rig.run.seconds);
        let mut items = Vec::new();
        for (plan, stream) in self.plans.iter().enumerate() {
            let mut index = 0;
            while stream.period * index < run {
                items.push(Item::Frame {
                    plan,
                    index: index as usize,
                    release: stream.period * index,
                    fault: None,
                });
                index += 1;
            }
        }
        for (fault, spec) in self.rig.faults.iter().enumerate() {
            if !spec.kind.hits_frames() {
                items.push(Item::Link {
                    fault,
                    release: Duration::from_secs_f64(spec.at_s),
                });
            }
        }
        // Link faults before frames released at the same moment: a stall splits that frame.
        items.sort_by_key(|item| (item.release(), matches!(item, Item::Frame { .. })));
        for (fault, spec) in self.rig.faults.iter().enumerate() {
            let Some(stream) = spec.stream.filter(|_| spec.kind.hits_frames()) else {
                continue;
            };
            let at = Duration::from_secs_f64(spec.at_s);
            let count = spec.count.unwrap_or(1) as usize;
            let hit = items
                .iter_mut()
                .filter_map(|item| match item {
                    Item::Frame {
                        plan,
                        release,
                        fault,
                        ..
                    } if self.plans[*plan].kind == stream && *release >= at && fault.is_none() => {
                        Some(fault)
                    }
                    _ => None,
                })
                .take(count);
            for slot in hit {
                *slot = Some(fault);
            }
        }
        items
    }

    fn fault_log(&mut self, fault: usize) -> &mut FaultLog {
        if let Some(at) = self.log.faults.iter().position(|f| f.spec == fault) {
            return &mut self.log.faults[at];
        }
        let now = Instant::now();
        self.log.faults.push(FaultLog {
            spec: fault,
            kind: self.rig.faults[fault].kind,
            window: (now, now),
            frames: Vec::new(),
            epoch: self.log.epochs.len() - 1,
            error: None,
        });
        let last = self.log.faults.len() - 1;
        &mut self.log.faults[last]
    }

    fn log_frame(
        &mut self,
        plan: usize,
        index: usize,
        release: Duration,
        seq: Option<u32>,
        fault: Option<usize>,
        fate: Fate,
    ) {
        let stream = &self.plans[plan];
        self.log.frames.push(FrameLog {
            stream: stream.kind,
            index,
            sample: index % stream.samples.len(),
            release,
            sent_at: (!matches!(fate, Fate::Dropped | Fate::DutDown)).then(Instant::now),
            seq,
            epoch: self.log.epochs.len() - 1,
            fault,
            warmup: false,
            fate,
        });
    }

    fn send_frame(
        &mut self,
        conn: &mut Connection,
        plan: usize,
        index: usize,
        release: Duration,
        fault: Option<usize>,
        stall: Option<usize>,
    ) -> Result<(), LinkError> {
        let stream = &self.plans[plan];
        let kind = stream.frame_kind();
        let epoch = self.log.epochs.len() - 1;
        let spec = fault.map(|f| (f, &self.rig.faults[f]));
        let mut fate = match spec.map(|(_, spec)| spec.kind) {
            Some(FaultKind::DropFrames) => {
                let seq = conn.skip_seq();
                self.log_frame(plan, index, release, Some(seq), fault, Fate::Dropped);
                return Ok(());
            }
            Some(FaultKind::CorruptFrame) => Fate::Corrupted,
            Some(FaultKind::DuplicateFrame) => Fate::Duplicated,
            Some(FaultKind::Delay) => Fate::Delayed,
            _ => Fate::Sent,
        };
        if let Some((fault, spec)) = spec.filter(|_| fate == Fate::Delayed) {
            let delay = Duration::from_secs_f64(spec.delay_ms.unwrap_or(0.0) / 1000.0);
            let begin = Instant::now();
            self.pump(conn, begin + delay, |_| false);
            self.fault_log(fault).window = (begin, Instant::now());
        }
        let (seq, bytes) = conn.encode(kind, &stream.sample(index).payload);
        if fate == Fate::Corrupted {
            // Flip bytes inside the payload, after its CRC was computed: the header
            // stays intact, so the DUT drops exactly this message.
            let len = bytes.len();
            for at in [HEADER_LEN, (HEADER_LEN + len) / 2, len - 1] {
                bytes[at] ^= 0xa5;
            }
        }
        let message = bytes.to_vec();
        match (fate, stall) {
            (Fate::Duplicated, _) => conn.write_encoded_times(2)?,
            (_, Some(stall)) => {
                fate = Fate::Split;
                let half = message.len() / 2;
                conn.write_raw(&message[..half])?;
                let begin = Instant::now();
                let silence = Duration::from_secs_f64(
                    self.rig.faults[stall].duration_ms.unwrap_or(0.0) / 1000.0,
                );
                self.pump(conn, begin + silence, |_| false);
                conn.write_raw(&message[half..])?;
                let slot = self.log.frames.len();
                let log = self.fault_log(stall);
                log.window = (begin, Instant::now());
                log.frames.push(slot);
            }
            _ => conn.write_raw(&message)?,
        }
        let ep = &mut self.log.epochs[epoch];
        match fate {
            Fate::Corrupted => ep.corrupted += 1,
            Fate::Duplicated => {
                ep.duplicated += 1;
                ep.delivered.push(seq);
            }
            _ => ep.delivered.push(seq),
        }
        self.log_frame(plan, index, release, Some(seq), fault, fate);
        Ok(())
    }

    /// Kills the DUT and starts it again; frames released meanwhile are not sent.
    fn restart(&mut self, conn: Connection, fault: usize) -> Result<Connection, LinkError> {
        let begin = Instant::now();
        let next_seq = conn.next_seq();
        self.launcher.kill();
        let epoch = self.log.epochs.len() - 1;
        self.log.epochs[epoch].killed = true;
        for (at, message) in conn.close() {
            self.record(at, message);
        }
        let mut conn = self.boot(epoch + 1)?;
        conn.continue_from(next_seq);
        self.start(&mut conn)?;
        let end = Instant::now();
        let log = self.fault_log(fault);
        log.window = (begin, end);
        log.epoch = epoch;
        Ok(conn)
    }

    /// Waits for the answers still due, stops the DUT and collects its summary.
    fn finish(&mut self, mut conn: Connection) -> Result<(), LinkError> {
        let timeout = Duration::from_secs_f64(self.rig.run.answer_timeout_s);
        let epoch = self.log.epochs.len() - 1;
        let due: Vec<u32> = self
            .log
            .frames
            .iter()
            .filter(|f| {
                f.epoch == epoch
                    && matches!(
                        f.fate,
                        Fate::Sent | Fate::Delayed | Fate::Duplicated | Fate::Split
                    )
            })
            .filter_map(|f| f.seq)
            .collect();
        self.pump(&conn, Instant::now() + timeout, |log| {
            due.iter().all(|seq| log.answers.contains_key(seq))
        });
        let seq = conn.send(Kind::Stop, &[])?;
        self.log.epochs[epoch].delivered.push(seq);
        self.pump(&conn, Instant::now() + timeout, |log| {
            log.epochs[epoch].summary.is_some()
        });
        for (at, message) in conn.close() {
            self.record(at, message);
        }
        Ok(())
    }

    /// Records incoming messages until `done` holds or `until` passes; returns `done`.
    fn pump(&mut self, conn: &Connection, until: Instant, done: impl Fn(&RunLog) -> bool) -> bool {
        loop {
            if done(&self.log) {
                return true;
            }
            let now = Instant::now();
            if now >= until {
                return false;
            }
            if let Some((at, message)) = conn.next(until - now) {
                self.record(at, message);
            }
        }
    }

    fn record(&mut self, at: Instant, message: Incoming) {
        let epoch = self.log.epochs.len() - 1;
        let ep = &mut self.log.epochs[epoch];
        match message {
            Incoming::Hello(hello) => {
                if ep.hello.replace(hello).is_some() {
                    ep.problems.push(
                        "a second Hello on one connection: the DUT restarted on its own".into(),
                    );
                }
            }
            Incoming::Ack { kind, .. } => {
                if kind == Kind::Start.code() {
                    ep.start_acked = true;
                }
            }
            Incoming::Detections {
                frame_seq,
                detections,
                ..
            } => {
                self.pending.insert(frame_seq, detections);
            }
            Incoming::Timing {
                record,
                outcome,
                stream: _,
            } => {
                let seq = record.frame_seq.get();
                let answer = Answer {
                    record,
                    outcome,
                    detections: self.pending.remove(&seq),
                    at,
                };
                if self.log.answers.insert(seq, answer).is_some() {
                    ep.problems.push(format!("frame {seq} was answered twice"));
                }
            }
            Incoming::Summary(summary) => ep.summary = Some(summary),
            Incoming::Problem(problem) => ep.problems.push(problem),
            Incoming::Closed(stats) => ep.rig_link = Some(stats),
        }
    }
}

impl StreamPlan {
    /// The message kind this stream's frames travel in.
    pub fn frame_kind(&self) -> Kind {
        match self.kind {
            StreamKind::Camera => Kind::CameraFrame,
            StreamKind::Lidar => Kind::LidarFrame,
        }
    }

    /// The wire's stream code.
    pub fn wire_stream(&self) -> Stream {
        match self.kind {
            StreamKind::Camera => Stream::Camera,
            StreamKind::Lidar => Stream::Lidar,
        }
    }
}
