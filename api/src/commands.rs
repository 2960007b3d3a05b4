//! Running a domain command from a request: the store's command path plus metrics.

use portico_domain::streams::StreamId;
use portico_domain::{DomainResult, Event};
use portico_store::command::{execute, CommandError, Committed};
use portico_store::Metadata;

use crate::error::ApiResult;
use crate::state::AppState;

pub async fn run<F>(
    state: &AppState,
    metadata: &Metadata,
    streams: &[StreamId],
    decide: F,
) -> ApiResult<Committed>
where
    F: Fn(&portico_store::command::Loaded) -> DomainResult<Vec<Event>>,
{
    match execute(state.store.as_ref(), streams, metadata, decide).await {
        Ok(committed) => {
            state.metrics.appended(committed.events.len());
            Ok(committed)
        }
        Err(e) => {
            if matches!(
                e,
                CommandError::Conflict { .. }
                    | CommandError::Domain(portico_domain::DomainError::SubmissionRejected(_))
            ) {
                state.metrics.conflict();
            }
            Err(e.into())
        }
    }
}

/// An aggregate's current state, folded from its stream (for checks made outside a
/// command, such as showing an invite page).
pub async fn load<A: portico_domain::Aggregate>(
    state: &AppState,
    stream: &StreamId,
) -> ApiResult<A> {
    let events = portico_store::read_whole_stream(state.store.as_ref(), stream)
        .await?
        .iter()
        .map(|e| e.decode())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| crate::error::ApiError::Internal(e.to_string()))?;
    Ok(A::replay(&events))
}
