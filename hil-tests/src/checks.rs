//! Judging a run: one [`Check`] per JUnit test case, each named for what it checks.
//!
//! - `hello`: every DUT instance said `Hello`, serves every stream the rig sends and
//!   accepts its largest frame;
//! - `start-ack`: every instance acknowledged `Start`;
//! - `outputs-<stream>`: every frame the DUT ran has the reference's detections (same
//!   count, each matched by class, score and box within the rig's tolerances);
//! - `deadlines-<stream>`: every frame no fault disturbed ended `Met` in the DUT's own
//!   clock, against the deadline the rig sent, and the record is consistent (met
//!   exactly when release to finish is within the deadline);
//! - `latency-<stream>`: every frame no fault disturbed was answered within its
//!   deadline as the rig sees it, from its last byte sent to its timing record back:
//!   the link both ways included, which the DUT's own clock cannot see (a link too
//!   slow for the stream queues frames before they arrive);
//! - `accounting`: every frame sent is answered exactly once or explained (dropped,
//!   corrupted, or lost with a killed instance), and the DUT's `Summary` holds exactly
//!   the counts the rig predicts from what it sent (frames, records, outcomes, link
//!   errors); the rig's own decoder saw no damage;
//! - `fault-<kind>` (with `-2`, `-3`… for repeats): the fault was injected and ended in
//!   its expected state (see [`fault_check`]).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use cadence_runtime::wire::DecoderStats;
use cadence_runtime::wire::payload::{Detection, Outcome, Summary};

use crate::rig::{FaultKind, Rig, StreamKind};
use crate::session::{Epoch, Fate, FrameLog, RunLog};
use crate::streams::StreamPlan;

/// One check's verdict.
#[derive(Clone, Debug)]
pub struct Check {
    /// The JUnit test case name.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// One line: what passed, or the first thing that failed.
    pub summary: String,
    /// Everything it looked at, one finding per line.
    pub details: Vec<String>,
}

impl Check {
    fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            passed: true,
            summary: String::new(),
            details: Vec::new(),
        }
    }

    fn fail(&mut self, finding: impl Into<String>) {
        let finding = finding.into();
        if self.passed {
            self.summary = finding.clone();
        }
        self.passed = false;
        self.details.push(format!("FAIL: {finding}"));
    }

    fn note(&mut self, finding: impl Into<String>) {
        self.details.push(finding.into());
    }

    fn done(mut self, passed: impl Into<String>) -> Self {
        if self.passed {
            self.summary = passed.into();
        }
        self
    }
}

/// Every check of `log`.
pub fn judge(rig: &Rig, plans: &[StreamPlan], log: &RunLog) -> Vec<Check> {
    let mut checks = vec![hello(plans, log), start_ack(log)];
    for plan in plans {
        checks.push(outputs(rig, plan, log));
    }
    for plan in plans {
        checks.push(deadlines(plan, log));
    }
    for plan in plans {
        checks.push(latency(plan, log));
    }
    checks.push(accounting(plans, log));
    let mut seen: Vec<FaultKind> = Vec::new();
    for (index, spec) in rig.faults.iter().enumerate() {
        let repeat = seen.iter().filter(|k| **k == spec.kind).count();
        seen.push(spec.kind);
        let name = match repeat {
            0 => format!("fault-{}", spec.kind.name()),
            n => format!("fault-{}-{}", spec.kind.name(), n + 1),
        };
        checks.push(fault_check(name, index, spec.kind, log));
    }
    if let Some(fatal) = &log.fatal {
        for check in &mut checks {
            check.fail(format!("the run stopped early: {fatal}"));
        }
    }
    checks
}

fn hello(plans: &[StreamPlan], log: &RunLog) -> Check {
    let mut check = Check::new("hello");
    let largest = plans
        .iter()
        .flat_map(|p| p.samples.iter().map(|s| s.payload.len()))
        .max()
        .unwrap_or(0);
    for (index, epoch) in log.epochs.iter().enumerate() {
        let Some(hello) = epoch.hello else {
            check.fail(format!("DUT instance {index} never said Hello"));
            continue;
        };
        check.note(format!(
            "instance {index}: `{}`, streams {:#b}, accepts {} bytes",
            hello.name(),
            hello.streams.get(),
            hello.max_payload.get()
        ));
        for plan in plans {
            if !hello.serves(plan.wire_stream()) {
                check.fail(format!(
                    "instance {index} (`{}`) does not serve the {} stream the rig sends",
                    hello.name(),
                    plan.kind.name()
                ));
            }
        }
        if (hello.max_payload.get() as usize) < largest {
            check.fail(format!(
                "instance {index} accepts payloads of {} bytes, the rig sends up to {largest}; lower the frame size or max_points",
                hello.max_payload.get()
            ));
        }
    }
    if log.epochs.is_empty() {
        check.fail("no DUT instance was started");
    }
    let n = log.epochs.len();
    check.done(format!(
        "{n} DUT instance(s) said Hello and serve every stream"
    ))
}

fn start_ack(log: &RunLog) -> Check {
    let mut check = Check::new("start-ack");
    for (index, epoch) in log.epochs.iter().enumerate() {
        if !epoch.start_acked {
            check.fail(format!("DUT instance {index} did not acknowledge Start"));
        }
    }
    check.done("every DUT instance acknowledged Start")
}

/// Frames of `stream` that reached the DUT in one piece, with their answers.
fn answered(
    log: &RunLog,
    stream: StreamKind,
) -> impl Iterator<Item = (&FrameLog, Option<&crate::session::Answer>)> {
    log.frames
        .iter()
        .filter(move |f| f.stream == stream && reaches_dut(f))
        .map(|f| (f, f.seq.and_then(|seq| log.answers.get(&seq))))
}

fn reaches_dut(frame: &FrameLog) -> bool {
    matches!(
        frame.fate,
        Fate::Sent | Fate::Delayed | Fate::Duplicated | Fate::Split
    )
}

fn outputs(rig: &Rig, plan: &StreamPlan, log: &RunLog) -> Check {
    let stream = plan.kind.name();
    let mut check = Check::new(format!("outputs-{stream}"));
    let (score_tol, box_tol) = (rig.reference.score_tolerance, rig.reference.box_tolerance);
    let mut compared = 0;
    let mut worst = (0.0f32, 0.0f32);
    for (frame, answer) in answered(log, plan.kind) {
        let Some(answer) = answer else { continue };
        if !matches!(answer.outcome, Outcome::Met | Outcome::Late) {
            continue;
        }
        let seq = answer.record.frame_seq.get();
        let Some(got) = &answer.detections else {
            check.fail(format!(
                "frame {seq} ran ({:?}) but no detections arrived",
                answer.outcome
            ));
            continue;
        };
        compared += 1;
        let expected = &plan.sample(frame.sample).expected;
        match compare(expected, got, score_tol, box_tol) {
            Ok((score, bbox)) => worst = (worst.0.max(score), worst.1.max(bbox)),
            Err(difference) => check.fail(format!(
                "frame {seq} (recorded frame {}): {difference}",
                frame.sample
            )),
        }
    }
    check.note(format!(
        "{compared} frames compared; largest score difference {:.3e}, largest box difference {:.3e} (tolerances {score_tol:.1e}, {box_tol:.1e})",
        worst.0, worst.1
    ));
    if compared == 0 {
        check.fail(format!(
            "no {stream} frame was run by the DUT, so no output was compared"
        ));
    }
    check.done(format!(
        "{compared} frames match the reference (score within {score_tol:.1e}, boxes within {box_tol:.1e})"
    ))
}

/// Matches every expected detection to one received (same class, score and box within
/// tolerance), greedily in score order; returns the largest differences.
fn compare(
    expected: &[Detection],
    got: &[Detection],
    score_tol: f32,
    box_tol: f32,
) -> Result<(f32, f32), String> {
    if expected.len() != got.len() {
        return Err(format!(
            "{} detections, the reference has {}",
            got.len(),
            expected.len()
        ));
    }
    let mut used = vec![false; got.len()];
    let mut worst = (0.0f32, 0.0f32);
    for (i, want) in expected.iter().enumerate() {
        let differences = |have: &Detection| {
            let score = (have.score.get() - want.score.get()).abs();
            let bbox = have
                .bbox
                .iter()
                .zip(&want.bbox)
                .map(|(a, b)| (a.get() - b.get()).abs())
                .fold(0.0f32, f32::max);
            (score, bbox)
        };
        let found = got.iter().enumerate().find(|(j, have)| {
            let (score, bbox) = differences(have);
            !used[*j] && have.class == want.class && score <= score_tol && bbox <= box_tol
        });
        match found {
            Some((j, have)) => {
                used[j] = true;
                let (score, bbox) = differences(have);
                worst = (worst.0.max(score), worst.1.max(bbox));
            }
            None => {
                return Err(format!(
                    "reference detection {i} (class {}, score {:.5}) has no match within tolerance",
                    want.class.get(),
                    want.score.get()
                ));
            }
        }
    }
    Ok(worst)
}

/// Whether a fault was active within one `period` of `frame`'s release.
fn disturbed(frame: &FrameLog, period: Duration, log: &RunLog) -> bool {
    if frame.warmup || frame.fault.is_some() {
        return true;
    }
    let release = log.started + frame.release;
    log.faults.iter().any(|fault| {
        let (begin, end) = fault.window;
        release + period >= begin && release <= end + period
    })
}

fn deadlines(plan: &StreamPlan, log: &RunLog) -> Check {
    let stream = plan.kind.name();
    let mut check = Check::new(format!("deadlines-{stream}"));
    let deadline_ns = u64::try_from(plan.deadline.as_nanos()).unwrap_or(u64::MAX);
    let mut tally = [0usize; Outcome::ALL.len()];
    let (mut judged, mut excluded) = (0, 0);
    let mut responses = Vec::new();
    for (frame, answer) in answered(log, plan.kind) {
        let Some(answer) = answer else { continue };
        let record = &answer.record;
        let seq = record.frame_seq.get();
        let response = record.response_ns();
        if record.deadline_ns.get() != deadline_ns {
            check.fail(format!(
                "frame {seq}: judged against {} ns, the rig sent {deadline_ns} ns",
                record.deadline_ns.get()
            ));
        }
        let within = response <= record.deadline_ns.get();
        let consistent = match answer.outcome {
            Outcome::Met => within,
            Outcome::Late => !within,
            _ => true,
        };
        if !consistent {
            check.fail(format!(
                "frame {seq}: outcome {:?} but release to finish took {response} ns against {} ns",
                answer.outcome,
                record.deadline_ns.get()
            ));
        }
        if disturbed(frame, plan.period, log) {
            excluded += 1;
            continue;
        }
        judged += 1;
        tally[usize::from(answer.outcome.code())] += 1;
        if matches!(answer.outcome, Outcome::Met | Outcome::Late) {
            responses.push(response);
        }
        if answer.outcome != Outcome::Met {
            check.fail(format!(
                "frame {seq}: {:?} (release to finish {:.1} ms, deadline {:.1} ms)",
                answer.outcome,
                response as f64 / 1e6,
                deadline_ns as f64 / 1e6
            ));
        }
    }
    responses.sort_unstable();
    let ms = |ns: Option<&u64>| ns.map_or(f64::NAN, |&ns| ns as f64 / 1e6);
    let mut line = format!(
        "{judged} frames judged, {excluded} left out (warm-up or within a fault's window):"
    );
    for outcome in Outcome::ALL {
        let _ = write!(
            line,
            " {:?} {}",
            outcome,
            tally[usize::from(outcome.code())]
        );
    }
    check.note(line);
    check.note(format!(
        "release to finish: p50 {:.1} ms, max {:.1} ms, deadline {:.1} ms",
        ms(responses.get(responses.len() / 2)),
        ms(responses.last()),
        deadline_ns as f64 / 1e6
    ));
    if judged == 0 {
        check.fail(format!(
            "no {stream} frame outside a fault's window was answered"
        ));
    }
    check.done(format!(
        "{judged} frames met their {:.1} ms deadline",
        deadline_ns as f64 / 1e6
    ))
}

fn latency(plan: &StreamPlan, log: &RunLog) -> Check {
    let stream = plan.kind.name();
    let mut check = Check::new(format!("latency-{stream}"));
    let mut round_trips = Vec::new();
    for (frame, answer) in answered(log, plan.kind) {
        let (Some(answer), Some(sent)) = (answer, frame.sent_at) else {
            continue;
        };
        if disturbed(frame, plan.period, log) {
            continue;
        }
        let round_trip = answer.at.saturating_duration_since(sent);
        round_trips.push(round_trip);
        if round_trip > plan.deadline {
            check.fail(format!(
                "{stream} frame {} (seq {}): answered {:.1} ms after it was sent, deadline {:.1} ms",
                frame.index,
                answer.record.frame_seq.get(),
                ms(round_trip),
                ms(plan.deadline)
            ));
        }
    }
    round_trips.sort_unstable();
    check.note(format!(
        "{} frames: rig send to record p50 {:.1} ms, max {:.1} ms",
        round_trips.len(),
        round_trips
            .get(round_trips.len() / 2)
            .map_or(f64::NAN, |d| ms(*d)),
        round_trips.last().map_or(f64::NAN, |d| ms(*d))
    ));
    if round_trips.is_empty() {
        check.fail(format!(
            "no {stream} frame outside a fault's window was answered"
        ));
    }
    check.done(format!(
        "{} frames answered within {:.1} ms of being sent, link included",
        round_trips.len(),
        ms(plan.deadline)
    ))
}

/// Gaps in a sequence of delivered sequence numbers: what the DUT's decoder counts as
/// out of order.
fn gaps(delivered: &[u32]) -> u64 {
    delivered
        .windows(2)
        .filter(|w| w[1] != w[0].wrapping_add(1))
        .count() as u64
}

/// The summary the rig expects from `epoch`, given what it sent and what came back.
fn predicted(index: usize, epoch: &Epoch, log: &RunLog) -> Summary {
    let mut summary = Summary::default();
    let frames: Vec<&FrameLog> = log
        .frames
        .iter()
        .filter(|f| f.epoch == index && reaches_dut(f) && f.fate != Fate::Corrupted)
        .collect();
    summary.frames_received = (frames.len() as u64).into();
    for frame in &frames {
        if let Some(answer) = frame.seq.and_then(|seq| log.answers.get(&seq)) {
            summary.record(answer.outcome);
        }
    }
    let link = &mut summary.link;
    link.messages = (epoch.delivered.len() as u64).into();
    link.payload_checksum = epoch.corrupted.into();
    link.duplicate = epoch.duplicated.into();
    link.out_of_order = gaps(&epoch.delivered).into();
    summary
}

/// Whether `frame`, unanswered, was still in flight when its DUT instance was killed:
/// sent no earlier than its stream's deadline plus one period before the kill (an
/// earlier frame should have been answered by then, if only as skipped).
fn in_flight_at_kill(frame: &FrameLog, plans: &[StreamPlan], log: &RunLog) -> bool {
    let kill = log
        .faults
        .iter()
        .filter(|f| f.kind == FaultKind::Restart && f.epoch == frame.epoch)
        .map(|f| f.window.0)
        .next();
    let allowance = plans
        .iter()
        .find(|p| p.kind == frame.stream)
        .map_or(Duration::ZERO, |p| p.deadline + p.period);
    match (kill, frame.sent_at) {
        (Some(kill), Some(sent)) => sent + allowance >= kill,
        _ => false,
    }
}

fn accounting(plans: &[StreamPlan], log: &RunLog) -> Check {
    let mut check = Check::new("accounting");
    let (mut answered_count, mut dropped, mut corrupted, mut lost, mut down) = (0, 0, 0, 0, 0);
    for frame in &log.frames {
        let answer = frame.seq.and_then(|seq| log.answers.get(&seq));
        let killed = log.epochs.get(frame.epoch).is_some_and(|e| e.killed)
            && in_flight_at_kill(frame, plans, log);
        let what = format!(
            "{} frame {} (seq {})",
            frame.stream.name(),
            frame.index,
            frame.seq.map_or("none".into(), |s| s.to_string())
        );
        match (frame.fate, answer) {
            (Fate::Dropped, None) => dropped += 1,
            (Fate::Corrupted, None) => corrupted += 1,
            (Fate::DutDown, None) => down += 1,
            (Fate::Dropped | Fate::Corrupted | Fate::DutDown, Some(_)) => check.fail(format!(
                "{what} never reached the DUT intact, yet was answered"
            )),
            (_, Some(_)) => answered_count += 1,
            (_, None) if killed => lost += 1,
            (_, None) => check.fail(format!(
                "{what} was sent intact and never answered (and was not in flight when a restart killed the DUT)"
            )),
        }
    }
    check.note(format!(
        "{} frames released: {answered_count} answered, {dropped} dropped, {corrupted} corrupted, {lost} lost with a killed DUT instance, {down} released while the DUT restarted",
        log.frames.len()
    ));
    for (index, epoch) in log.epochs.iter().enumerate() {
        for problem in &epoch.problems {
            check.fail(format!("instance {index}: {problem}"));
        }
        if let Some(stats) = epoch.rig_link {
            let damaged = DecoderStats { frames: 0, ..stats };
            if damaged != DecoderStats::default() {
                check.fail(format!(
                    "instance {index}: the rig's decoder found damage in what the DUT sent: {damaged:?}"
                ));
            }
        }
        if epoch.killed {
            check.note(format!(
                "instance {index} was killed: it sends no summary; its unanswered frames are counted as lost"
            ));
            continue;
        }
        let Some(summary) = epoch.summary else {
            check.fail(format!(
                "instance {index} did not answer Stop with a Summary"
            ));
            continue;
        };
        let want = predicted(index, epoch, log);
        check.note(format!("instance {index} summary: {}", describe(&summary)));
        if summary != want {
            check.fail(format!(
                "instance {index}: its summary differs from what the rig predicts\n  DUT: {}\n  rig: {}",
                describe(&summary),
                describe(&want)
            ));
        }
    }
    check.done(format!(
        "every frame is answered or explained ({answered_count} answered, {} explained), and the DUT's counters match",
        dropped + corrupted + lost + down
    ))
}

/// A summary on one line.
pub fn describe(s: &Summary) -> String {
    let l = &s.link;
    let mut line = format!(
        "frames {} records {}",
        s.frames_received.get(),
        s.records_sent.get()
    );
    for outcome in Outcome::ALL {
        let _ = write!(line, " {:?} {}", outcome, s.count(outcome));
    }
    let _ = write!(
        line,
        "; link: messages {} skipped-bytes {} garbage {} header-crc {} version {} kind {} too-long {} payload-crc {} truncated {} duplicate {} out-of-order {}",
        l.messages.get(),
        l.skipped_bytes.get(),
        l.garbage.get(),
        l.header_checksum.get(),
        l.unsupported_version.get(),
        l.unknown_kind.get(),
        l.too_long.get(),
        l.payload_checksum.get(),
        l.truncated.get(),
        l.duplicate.get(),
        l.out_of_order.get()
    );
    line
}

/// The check for fault `index`: it was injected, and each kind ends as expected:
///
/// - `drop-frames`: the frames were not answered and the next frame was (the DUT's
///   out-of-order count, checked exactly by `accounting`, is at least one);
/// - `corrupt-frame`: the frame was not answered, the DUT counted a payload checksum
///   error, and the stream's next frame was answered;
/// - `duplicate-frame`: the frame was answered once and the DUT counted a duplicate;
/// - `delay`: the late frame was answered, not refused or failed;
/// - `stall`: the frame split by the silence was answered, and the DUT counted no
///   truncation or damage (it waited for the rest);
/// - `restart`: the new instance said Hello and acknowledged Start, and answered
///   frames after the restart; frames lost with the old instance are listed.
pub fn fault_check(name: String, index: usize, kind: FaultKind, log: &RunLog) -> Check {
    let mut check = Check::new(name);
    let Some(fault) = log.faults.iter().find(|f| f.spec == index) else {
        check.fail("the fault was never injected: no frame of its stream was released after at_s");
        return check;
    };
    if let Some(error) = &fault.error {
        check.fail(error.clone());
    }
    let frames: Vec<&FrameLog> = fault
        .frames
        .iter()
        .filter_map(|&i| log.frames.get(i))
        .collect();
    let answer = |f: &FrameLog| f.seq.and_then(|seq| log.answers.get(&seq));
    let summary = log.epochs.get(fault.epoch).and_then(|e| e.summary);
    let epoch_killed = log.epochs.get(fault.epoch).is_some_and(|e| e.killed);
    // The first frame of `stream` sent intact after `after` (an index into the log).
    let next_sent = |after: usize, stream: Option<StreamKind>| {
        log.frames.iter().skip(after + 1).find(|f| {
            reaches_dut(f) && f.fate != Fate::Corrupted && stream.is_none_or(|s| f.stream == s)
        })
    };
    let last_hit = fault.frames.iter().copied().max().unwrap_or(0);
    let recovered =
        |check: &mut Check, stream: Option<StreamKind>| match next_sent(last_hit, stream) {
            Some(next) if answer(next).is_some() => check.note(format!(
                "the next frame ({} frame {}) was answered",
                next.stream.name(),
                next.index
            )),
            Some(next) if epoch_killed => check.note(format!(
                "the next frame ({} frame {}) was lost with a killed instance",
                next.stream.name(),
                next.index
            )),
            Some(next) => check.fail(format!(
                "the next frame ({} frame {}) was not answered: the DUT did not recover",
                next.stream.name(),
                next.index
            )),
            None => check.note("no frame followed the fault"),
        };
    if frames.is_empty() && kind != FaultKind::Restart {
        check.fail("the fault hit no frame");
    }
    match kind {
        FaultKind::DropFrames => {
            for f in &frames {
                if answer(f).is_some() {
                    check.fail(format!("dropped frame {} was answered", f.index));
                }
            }
            check.note(format!("{} frame(s) dropped", frames.len()));
            recovered(&mut check, None);
            if let Some(s) = summary
                && s.link.out_of_order.get() == 0
            {
                check.fail("the DUT counted no out-of-order message after the gap");
            }
        }
        FaultKind::CorruptFrame => {
            for f in &frames {
                if answer(f).is_some() {
                    check.fail(format!("corrupted frame {} was answered", f.index));
                }
            }
            match summary {
                Some(s) if s.link.payload_checksum.get() == 0 => {
                    check.fail("the DUT counted no payload checksum error")
                }
                Some(s) => check.note(format!(
                    "the DUT counted {} payload checksum error(s)",
                    s.link.payload_checksum.get()
                )),
                None if epoch_killed => {
                    check.note("the instance was killed later: its counters are gone")
                }
                None => check.fail("no summary to find the checksum error in"),
            }
            recovered(&mut check, frames.first().map(|f| f.stream));
        }
        FaultKind::DuplicateFrame => {
            for f in &frames {
                if answer(f).is_none() && !epoch_killed {
                    check.fail(format!("duplicated frame {} was not answered", f.index));
                }
            }
            if let Some(s) = summary
                && s.link.duplicate.get() == 0
            {
                check.fail("the DUT counted no duplicate");
            }
        }
        FaultKind::Delay => {
            for f in &frames {
                match answer(f) {
                    Some(a) if matches!(a.outcome, Outcome::Refused | Outcome::Failed) => {
                        check.fail(format!("delayed frame {} ended {:?}", f.index, a.outcome))
                    }
                    Some(a) => check.note(format!(
                        "delayed frame {} ended {:?} after {:.1} ms at the DUT",
                        f.index,
                        a.outcome,
                        a.record.response_ns() as f64 / 1e6
                    )),
                    None if epoch_killed => {}
                    None => check.fail(format!("delayed frame {} was not answered", f.index)),
                }
            }
            recovered(&mut check, frames.first().map(|f| f.stream));
        }
        FaultKind::Stall => {
            let (begin, end) = fault.window;
            check.note(format!(
                "link silent for {:.1} ms mid-frame",
                ms(end - begin)
            ));
            for f in &frames {
                if answer(f).is_none() && !epoch_killed {
                    check.fail(format!(
                        "the frame split by the stall ({} frame {}) was not answered",
                        f.stream.name(),
                        f.index
                    ));
                }
            }
            if let Some(s) = summary {
                let l = s.link;
                if l.truncated.get() + l.header_checksum.get() + l.garbage.get() > 0 {
                    check.fail(format!(
                        "the DUT counted damage after the stall: {}",
                        describe(&s)
                    ));
                }
            }
            recovered(&mut check, None);
        }
        FaultKind::Restart => {
            let next = fault.epoch + 1;
            match log.epochs.get(next) {
                Some(e) if e.hello.is_some() && e.start_acked => {
                    check.note(format!("instance {next} said Hello and acknowledged Start"))
                }
                Some(_) => check.fail(format!(
                    "instance {next} did not say Hello and acknowledge Start"
                )),
                None => check.fail("the DUT was not started again"),
            }
            let lost = log
                .frames
                .iter()
                .filter(|f| f.epoch == fault.epoch && reaches_dut(f) && answer(f).is_none())
                .count();
            let down = log
                .frames
                .iter()
                .filter(|f| f.fate == Fate::DutDown)
                .count();
            check.note(format!(
                "{lost} frame(s) in flight were lost with the killed instance, {down} released while it restarted ({:.0} ms)",
                ms(fault.window.1 - fault.window.0)
            ));
            let after = log
                .frames
                .iter()
                .filter(|f| f.epoch == next && !f.warmup && reaches_dut(f))
                .count();
            let answered_after = log
                .frames
                .iter()
                .filter(|f| f.epoch == next && !f.warmup && answer(f).is_some())
                .count();
            if after > 0 && answered_after == 0 {
                check.fail("no frame was answered after the restart");
            }
            check.note(format!(
                "{answered_after} of {after} frames after the restart answered"
            ));
        }
    }
    let passed = format!("{} ended in the expected, accounted state", kind.name());
    check.done(passed)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Seconds from `start` to `at`, for reports.
pub fn seconds_since(start: Instant, at: Instant) -> f64 {
    at.saturating_duration_since(start).as_secs_f64()
}

#[cfg(test)]
mod tests {
    use zerocopy::little_endian::{F32, U32};

    use super::*;

    fn detection(class: u32, score: f32, x: f32) -> Detection {
        Detection {
            class: U32::new(class),
            score: F32::new(score),
            bbox: [x, 0.0, x + 1.0, 1.0, 0.0, 0.0, 0.0].map(F32::new),
        }
    }

    #[test]
    fn gaps_are_what_the_dut_counts_as_out_of_order() {
        assert_eq!(gaps(&[0, 1, 2, 3]), 0);
        assert_eq!(
            gaps(&[0, 1, 4, 5]),
            1,
            "two messages lost in a row: one gap"
        );
        assert_eq!(gaps(&[0, 2, 4]), 2);
        assert_eq!(gaps(&[u32::MAX, 0, 1]), 0, "the sequence wraps");
        assert_eq!(gaps(&[]), 0);
    }

    #[test]
    fn detections_match_in_any_order_within_tolerance() {
        let want = [detection(1, 0.9, 10.0), detection(2, 0.8, 20.0)];
        let got = [detection(2, 0.8, 20.0005), detection(1, 0.90001, 10.0)];
        let (score, bbox) = compare(&want, &got, 1e-4, 1e-3).unwrap();
        assert!(score > 0.0 && score <= 1e-4 && bbox > 0.0 && bbox <= 1e-3);
    }

    #[test]
    fn a_detection_off_by_more_than_the_tolerance_or_missing_fails() {
        let want = [detection(1, 0.9, 10.0)];
        let moved = [detection(1, 0.9, 10.1)];
        assert!(
            compare(&want, &moved, 1e-4, 1e-3)
                .unwrap_err()
                .contains("no match")
        );
        let other_class = [detection(2, 0.9, 10.0)];
        assert!(compare(&want, &other_class, 1e-4, 1e-3).is_err());
        assert!(
            compare(&want, &[], 1e-4, 1e-3)
                .unwrap_err()
                .contains("0 detections")
        );
    }
}
