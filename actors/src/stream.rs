//! `StreamActor`: the one writer of a live stream.
//!
//! Every ingest connection of a stream hands its init segments and fragments to the stream's actor, which
//! publishes them in arrival order through [`playlists::playlists::Stream`] (manifest rollover, part ring,
//! rendered playlists, position watch) and reports what happened to the [`StatusHub`]. Players never talk to the
//! actor. The actor also ends an idle stream (`EXT-X-ENDLIST`) and, after a grace period, asks the registry to
//! remove it.
//!
//! The published state lives in the shared `Stream`, not in the actor, so an actor that dies (a fault in a handler)
//! is replaced by the registry without losing anything already published.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use actix::WeakAddr;
use playlists::fmp4::{Fragment, Item};
use playlists::manifest::Warning;
use playlists::playlists::{Published, Stream};
use playlists::Error;
use tokio::sync::oneshot;

use crate::registry::{Registry, Remove};
use crate::status::{Event, StatusHub};

/// Items queued per stream, across all its ingest connections, before ingest is told to back off (503).
pub const MAILBOX: usize = 32;

/// How often the actor checks for idleness.
const TICK: Duration = Duration::from_millis(500);

/// Publish an item; the outcome comes back on `reply` (ingest uses `try_send`, so a full mailbox is a 503
/// instead of an unbounded queue).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Ingest {
    /// The item.
    pub item: Item,
    /// Parts to publish after `item` at the pace of their media: the rest of an encoder's long fragment cut into
    /// parts. They arrived together, but released at once they would reach players in bursts (a new part only
    /// every fragment, checklist item 73) and players would stall between them; released one part duration after
    /// another they reach players as a live encoder's parts would. A next item flushes whatever is still waiting
    /// (the encoder is ahead of the pace).
    pub then: Vec<Fragment>,
    /// Where the outcome goes: the part published, or nothing for an init.
    pub reply: oneshot::Sender<Result<Option<Published>, Error>>,
}

/// Why an item did not reach the actor, or got no answer.
#[derive(Debug)]
pub enum Undelivered {
    /// [`MAILBOX`] items are already queued for this stream.
    Busy,
    /// The actor is gone (its mailbox closed); the item and its paced parts come back to be sent to its
    /// replacement.
    Closed(Item, Vec<Fragment>),
    /// The actor died while handling the item.
    Died,
}

/// The way to a stream's actor, with the count of items queued for it. actix bounds a mailbox per sender, not
/// per actor, so the bound across every connection of a stream is kept here.
#[derive(Clone)]
pub struct StreamHandle {
    addr: Addr<StreamActor>,
    queued: Arc<AtomicUsize>,
}

/// Takes one place in the queue and gives it back when dropped, however the delivery ends.
struct Place<'a>(&'a AtomicUsize);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl StreamHandle {
    /// A handle on `addr` with an empty queue.
    pub fn new(addr: Addr<StreamActor>) -> Self {
        Self { addr, queued: Arc::new(AtomicUsize::new(0)) }
    }

    /// The actor.
    pub fn addr(&self) -> &Addr<StreamActor> {
        &self.addr
    }

    /// Whether the actor is alive.
    pub fn connected(&self) -> bool {
        self.addr.connected()
    }

    /// Hands `item` (and the parts to publish after it at their media's pace, see [`Ingest::then`]) to the actor
    /// and waits for the outcome of publishing `item`.
    pub async fn ingest(
        &self,
        item: Item,
        then: Vec<Fragment>,
    ) -> Result<Result<Option<Published>, Error>, Undelivered> {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= MAILBOX {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(Undelivered::Busy);
        }
        let _place = Place(&self.queued);
        let (reply, outcome) = oneshot::channel();
        match self.addr.try_send(Ingest { item, then, reply }) {
            Ok(()) => {}
            // actix parks a sender that overran its own share of the mailbox; the count above is the real bound.
            Err(SendError::Full(msg)) => self.addr.do_send(msg),
            Err(SendError::Closed(msg)) => return Err(Undelivered::Closed(msg.item, msg.then)),
        }
        outcome.await.map_err(|_| Undelivered::Died)
    }
}

/// Ends `stream` and announces it (`stream_ended`), unless it had ended already: a DELETE, a shutdown and the idle
/// timer may all try at once, and whichever gets there first announces it. Answers whether this call ended it.
pub(crate) fn end_and_announce(stream: &Stream, hub: &StatusHub) -> bool {
    let ended = stream.end().is_ok();
    if ended {
        hub.emit(Event::StreamEnded { stream: stream.id().to_string() });
    }
    ended
}

/// End the stream now (`DELETE /ingest/{stream}`, shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct End;

/// Test hooks that make the actor misbehave, to prove that other streams do not notice.
#[cfg(feature = "fault-injection")]
#[derive(Message)]
#[rtype(result = "()")]
pub enum Fault {
    /// Panic inside the handler: the actor dies and its mailbox closes.
    Panic,
    /// Stop handling messages for a while (the mailbox fills up: back-pressure).
    Stall(Duration),
}

/// Timing of the actor's life cycle.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// No part for this long: the stream ends.
    pub idle: Duration,
    /// An ended stream stays readable this long, then is removed.
    pub grace: Duration,
}

/// The writer of one stream.
pub struct StreamActor {
    stream: Arc<Stream>,
    hub: StatusHub,
    registry: WeakAddr<Registry>,
    lifetimes: Lifetimes,
    last_activity: Instant,
    ended_at: Option<Instant>,
    /// Parts waiting for their turn ([`Ingest::then`]), the oldest first, and when the first of them is due.
    paced: VecDeque<Fragment>,
    next_due: Instant,
    pacer: Option<SpawnHandle>,
}

impl StreamActor {
    /// An actor for `stream`.
    pub fn new(stream: Arc<Stream>, hub: StatusHub, registry: WeakAddr<Registry>, lifetimes: Lifetimes) -> Self {
        let ended_at = stream.edge().ended.then(Instant::now);
        Self {
            stream,
            hub,
            registry,
            lifetimes,
            last_activity: Instant::now(),
            ended_at,
            paced: VecDeque::new(),
            next_due: Instant::now(),
            pacer: None,
        }
    }

    fn name(&self) -> String {
        self.stream.id().to_string()
    }

    fn ingest(&mut self, item: Item) -> Result<Option<Published>, Error> {
        self.last_activity = Instant::now();
        match item {
            Item::Init(init) => self.stream.set_init(init).map(|()| None),
            Item::Fragment(fragment) => {
                let published = self.stream.publish(fragment, SystemTime::now())?;
                self.report(&published);
                Ok(Some(published))
            }
        }
    }

    /// Publishes one paced part; an error (the stream ended meanwhile) drops it with a log line, as nobody waits
    /// for its outcome.
    fn publish_paced(&mut self, fragment: Fragment) {
        if let Err(e) = self.ingest(Item::Fragment(fragment)) {
            tracing::debug!(stream = %self.stream.id(), "paced part not published: {e}");
        }
    }

    /// Publishes every part still waiting: something newer has come, or the stream ends.
    fn flush_paced(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.pacer.take() {
            ctx.cancel_future(timer);
        }
        while let Some(fragment) = self.paced.pop_front() {
            self.publish_paced(fragment);
        }
    }

    /// Publishes the parts that are due and sets a timer for the next one.
    fn release_due(&mut self, ctx: &mut Context<Self>) {
        self.pacer = None;
        while self.next_due <= Instant::now() {
            let Some(fragment) = self.paced.pop_front() else { return };
            self.next_due += fragment.duration();
            self.publish_paced(fragment);
        }
        if !self.paced.is_empty() {
            let wait = self.next_due.saturating_duration_since(Instant::now());
            self.pacer = Some(ctx.run_later(wait, Self::release_due));
        }
    }

    fn report(&self, p: &Published) {
        let stream = self.name();
        if let Some(closed) = &p.closed {
            self.hub.emit(Event::SegmentClosed {
                stream: stream.clone(),
                msn: closed.msn,
                duration: closed.duration.as_secs_f64(),
            });
        }
        if p.discontinuity {
            self.hub.emit(Event::Warning {
                stream: stream.clone(),
                message: format!("timeline discontinuity before part {}", p.position),
            });
        }
        for w in &p.warnings {
            let message = match w {
                Warning::PartOverTarget { position, duration, part_target } => format!(
                    "part {position} lasts {:.3} s, longer than PART-TARGET {:.3} s",
                    duration.as_secs_f64(),
                    part_target.as_secs_f64()
                ),
                Warning::ForcedCut { msn, duration } => format!(
                    "segment {msn} cut at {:.3} s without a keyframe: the GOP is longer than the target duration",
                    duration.as_secs_f64()
                ),
                Warning::Misaligned { msn, group_msn } => format!(
                    "segment {msn} holds the media of the group's segment {group_msn}: this rendition missed a segment \
                     boundary (lost media, or keyframes not where the other renditions have them), so switching to \
                     it lands on other media"
                ),
                Warning::TargetDurationRaised { gop, from, to } => format!(
                    "the first GOP lasts {:.3} s, longer than the target duration {from} s: this stream's target \
                     duration is {to} s, so that its segments start at keyframes (a GOP of at most {to} s keeps them so)",
                    gop.as_secs_f64()
                ),
            };
            tracing::warn!(stream = %stream, "{message}");
            self.hub.emit(Event::Warning { stream: stream.clone(), message });
        }
        self.hub.emit(Event::PartPublished {
            stream,
            msn: p.position.msn,
            part: p.position.part,
            duration: p.duration.as_secs_f64(),
            bytes: p.bytes,
            independent: p.independent,
        });
    }

    fn end(&mut self) {
        end_and_announce(&self.stream, &self.hub);
        self.ended_at.get_or_insert_with(Instant::now);
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.ended_at.is_none() && self.stream.edge().ended {
            // Ended from outside the actor (shutdown, or while no actor was alive).
            self.ended_at = Some(Instant::now());
        }
        match self.ended_at {
            None if self.last_activity.elapsed() >= self.lifetimes.idle => {
                tracing::info!(stream = %self.stream.id(), "idle: ending the stream");
                self.hub.emit(Event::StreamIdle { stream: self.name() });
                self.end();
            }
            Some(at) if at.elapsed() >= self.lifetimes.grace => {
                if let Some(registry) = self.registry.upgrade() {
                    registry.do_send(Remove { id: self.stream.id().clone(), generation: self.stream.generation() });
                }
                ctx.stop();
            }
            _ => {}
        }
    }
}

impl Actor for StreamActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX);
        ctx.run_interval(TICK, Self::tick);
    }
}

impl Handler<Ingest> for StreamActor {
    type Result = ();

    fn handle(&mut self, msg: Ingest, ctx: &mut Self::Context) {
        // Whatever was still waiting goes first: the encoder is ahead of the pace.
        self.flush_paced(ctx);
        let first = match &msg.item {
            Item::Fragment(f) => f.duration(),
            Item::Init(_) => Duration::ZERO,
        };
        let outcome = self.ingest(msg.item);
        let published = outcome.is_ok();
        let _ = msg.reply.send(outcome);
        if published && !msg.then.is_empty() {
            self.paced.extend(msg.then);
            self.next_due = Instant::now() + first;
            self.release_due(ctx);
        }
    }
}

impl Handler<End> for StreamActor {
    type Result = ();

    fn handle(&mut self, _msg: End, ctx: &mut Self::Context) {
        self.flush_paced(ctx);
        self.end();
    }
}

#[cfg(feature = "fault-injection")]
impl Handler<Fault> for StreamActor {
    type Result = ();

    fn handle(&mut self, msg: Fault, ctx: &mut Self::Context) {
        match msg {
            Fault::Panic => panic!("fault injected into stream {}", self.stream.id()),
            Fault::Stall(d) => ctx.wait(actix::clock::sleep(d).into_actor(self)),
        }
    }
}
