//! The built-in demo stream: a committed fixture (H.264 + AAC, 5 s, 0.2 s fragments, a keyframe every second)
//! published as a live stream at real-time pace, looped forever with its decode times rewritten so that the
//! timeline stays continuous. A newcomer gets a live LL-HLS stream at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use playlists::fmp4::{self, Fragment, Init, Item, Splitter};
use playlists::StreamId;

use crate::publisher::{PublishError, Publisher, Source};
use crate::Engine;

/// The demo stream's id.
pub const DEMO_STREAM: &str = "demo";

/// The looped fixture.
const FIXTURE: &[u8] = include_bytes!("../../tests/fixtures/h264_aac.mp4");

/// One pass over the fixture: its init, its fragments, and how long each track runs (in its own ticks).
struct Loop {
    init: Bytes,
    fragments: Vec<Fragment>,
    track_ticks: HashMap<u32, u64>,
}

fn split(file: &[u8]) -> Result<Loop, playlists::Error> {
    let mut splitter = Splitter::new(file.len());
    splitter.push(file);
    let (mut init, mut fragments) = (None, Vec::new());
    while let Some(item) = splitter.next_item()? {
        match item {
            Item::Init(i) => init = Some(i.bytes.clone()),
            Item::Fragment(f) => fragments.push(f),
        }
    }
    let init = init.ok_or(playlists::Error::NoInit)?;
    let mut track_ticks = HashMap::new();
    for f in &fragments {
        for run in &f.tracks {
            *track_ticks.entry(run.track_id).or_insert(0) += run.duration;
        }
    }
    Ok(Loop { init, fragments, track_ticks })
}

/// Starts publishing the fixture as stream `name`, forever (until the system stops).
pub fn spawn(engine: Engine, name: &str) {
    let id = match StreamId::parse(name) {
        Ok(id) => id,
        Err(e) => return tracing::error!("demo stream: {e}"),
    };
    actix::spawn(async move {
        match run(&engine, &id, FIXTURE).await {
            Err(PublishError::Data(playlists::Error::ShuttingDown)) => {
                tracing::info!(stream = %id, "demo stream stopped for the shutdown");
            }
            Err(e) => tracing::error!(stream = %id, "demo stream stopped: {e}"),
            Ok(()) => {}
        }
    });
}

/// Publishes `file` as stream `id` in a loop, pacing every fragment by its duration, through its own publisher
/// as any ingest source does.
pub async fn run(engine: &Engine, id: &StreamId, file: &[u8]) -> Result<(), PublishError> {
    let pass = split(file)?;
    let init = Arc::new(Init::parse(pass.init.clone())?);
    let mut publisher = start(engine, id, &init).await?;
    tracing::info!(stream = %id, codecs = init.codecs(), "publishing the demo stream at real-time pace");
    let begin = tokio::time::Instant::now();
    let mut media_time = Duration::ZERO;
    for round in 0u64.. {
        for fragment in &pass.fragments {
            let bytes = if round == 0 {
                fragment.bytes.clone()
            } else {
                fmp4::shift_decode_times(&fragment.bytes, |track| {
                    pass.track_ticks.get(&track).copied().unwrap_or(0) * round
                })?
            };
            let fragment = Fragment::parse(bytes, &init)?;
            media_time += fragment.duration();
            // A fragment is published once it is complete, i.e. once its media time has passed.
            tokio::time::sleep_until(begin + media_time).await;
            if let Err(e) = publisher.publish(Item::Fragment(fragment)).await {
                // Back-pressure or a stream ended by an operator: keep the loop going, the demo is best effort.
                tracing::warn!(stream = %id, "demo part not published: {e}");
                if !publisher.is_live() {
                    publisher = start(engine, id, &init).await?;
                }
            }
        }
    }
    Ok(())
}

/// A publisher of the demo stream, its init published.
async fn start(engine: &Engine, id: &StreamId, init: &Arc<Init>) -> Result<Publisher, PublishError> {
    let mut publisher = engine.publishers().attach(id, Source::Demo).await?;
    publisher.publish(Item::Init(Arc::clone(init))).await?;
    Ok(publisher)
}
