//! `Registry`: routes stream ids to their actors, creates streams on first ingest, ends and removes them.
//!
//! The registry supervises the stream actors: an actor whose mailbox closed (it died in a handler) is noticed the
//! next time its stream is routed, and a new actor is started on the same shared stream: nothing published is
//! lost, and no other stream is touched. An actor that stops at the end of its stream's life stays stopped.

use std::collections::HashMap;
use std::sync::Arc;

use actix::dev::ArbiterHandle;
use actix::prelude::*;
use playlists::{Error, Playlists, StreamId};

use crate::status::{Event, StatusHub};
use crate::stream::{end_and_announce, End, Lifetimes, StreamActor, StreamHandle};

/// Routes streams to their actors.
pub struct Registry {
    playlists: Arc<Playlists>,
    hub: StatusHub,
    lifetimes: Lifetimes,
    actors: HashMap<StreamId, (u64, StreamHandle)>,
    /// Set by [`EndAll`]: the server is shutting down, so no stream is created or revived.
    stopping: bool,
}

impl Registry {
    /// A registry over `playlists`.
    pub fn new(playlists: Arc<Playlists>, hub: StatusHub, lifetimes: Lifetimes) -> Self {
        Self { playlists, hub, lifetimes, actors: HashMap::new(), stopping: false }
    }

    fn spawn(
        &mut self,
        id: &StreamId,
        arbiter: Option<&ArbiterHandle>,
        ctx: &mut Context<Self>,
    ) -> Result<StreamHandle, Error> {
        let existed = self.playlists.stream(id).filter(|s| !s.edge().ended).map(|s| s.generation());
        let stream = self.playlists.start(id)?;
        if existed != Some(stream.generation()) {
            self.hub.emit(Event::StreamStarted { stream: id.to_string() });
        } else {
            tracing::warn!(stream = %id, "stream actor was gone: restarting it on the published state");
        }
        let (hub, registry, lifetimes) = (self.hub.clone(), ctx.address().downgrade(), self.lifetimes);
        let s = Arc::clone(&stream);
        // Not under actix's `Supervisor`: it restarts an actor that stops while any address to it exists (a
        // publisher's), so an actor that stopped at the end of its stream's life would come back and keep the
        // removed stream's memory. The registry is the supervisor: it re-creates an actor that died.
        let actor = StreamActor::new(s, hub, registry, lifetimes);
        let addr = match arbiter {
            Some(arbiter) => StreamActor::start_in_arbiter(arbiter, move |_| actor),
            None => actor.start(),
        };
        let handle = StreamHandle::new(addr);
        self.actors.insert(id.clone(), (stream.generation(), handle.clone()));
        Ok(handle)
    }
}

impl Actor for Registry {
    type Context = Context<Self>;
}

/// The actor of a stream that ingest may write to, created (or re-created) if needed.
#[derive(Message)]
#[rtype(result = "Result<StreamHandle, Error>")]
pub struct Route {
    /// The stream.
    pub id: StreamId,
    /// Where to start the actor if it has to be started: this thread's arbiter, or (`None`) the registry's.
    pub arbiter: Option<ArbiterHandle>,
}

impl Handler<Route> for Registry {
    type Result = Result<StreamHandle, Error>;

    fn handle(&mut self, msg: Route, ctx: &mut Self::Context) -> Self::Result {
        if self.stopping {
            return Err(Error::ShuttingDown);
        }
        let current = self.playlists.stream(&msg.id).filter(|s| !s.edge().ended);
        if let (Some((generation, addr)), Some(stream)) = (self.actors.get(&msg.id), current) {
            if *generation == stream.generation() && addr.connected() {
                return Ok(addr.clone());
            }
        }
        self.spawn(&msg.id, msg.arbiter.as_ref(), ctx)
    }
}

/// Removes a stream after its grace period (sent by its actor).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Remove {
    /// The stream.
    pub id: StreamId,
    /// Its generation: a stream re-created under the same id meanwhile is left alone.
    pub generation: u64,
}

impl Handler<Remove> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Remove, _ctx: &mut Self::Context) {
        let current = self.playlists.stream(&msg.id).map(|s| s.generation());
        if current == Some(msg.generation) {
            self.playlists.remove(&msg.id);
            self.hub.emit(Event::StreamRemoved { stream: msg.id.to_string() });
        }
        if self.actors.get(&msg.id).is_some_and(|(g, _)| *g == msg.generation) {
            self.actors.remove(&msg.id);
        }
    }
}

/// Ends a stream now; answers whether there was a live one.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct EndStream {
    /// The stream.
    pub id: StreamId,
}

impl Handler<EndStream> for Registry {
    type Result = bool;

    fn handle(&mut self, msg: EndStream, _ctx: &mut Self::Context) -> bool {
        let Some(stream) = self.playlists.stream(&msg.id).filter(|s| !s.edge().ended) else { return false };
        match self.actors.get(&msg.id) {
            Some((g, handle)) if *g == stream.generation() && handle.connected() => handle.addr().do_send(End),
            // No live actor to ask: end it directly, the state is shared.
            _ => {
                end_and_announce(&stream, &self.hub);
            }
        }
        true
    }
}

/// Ends every stream and refuses new ones (graceful shutdown); answers how many were live.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct EndAll;

impl Handler<EndAll> for Registry {
    type Result = usize;

    fn handle(&mut self, _msg: EndAll, _ctx: &mut Self::Context) -> usize {
        // Ingest stops here: uploads in flight find their stream ended (409), new ones are refused (503).
        self.stopping = true;
        let mut ended = 0;
        for stream in self.playlists.streams() {
            ended += usize::from(end_and_announce(&stream, &self.hub));
        }
        ended
    }
}

/// The actor currently serving a stream, if alive (for tests and fault injection).
#[derive(Message)]
#[rtype(result = "Option<Addr<StreamActor>>")]
pub struct Lookup {
    /// The stream.
    pub id: StreamId,
}

impl Handler<Lookup> for Registry {
    type Result = Option<Addr<StreamActor>>;

    fn handle(&mut self, msg: Lookup, _ctx: &mut Self::Context) -> Self::Result {
        self.actors.get(&msg.id).map(|(_, h)| h.addr().clone()).filter(Addr::connected)
    }
}
