//! Runtime and statistics endpoints: `/v2/services/haproxy/runtime/…` and
//! `/v2/services/haproxy/stats/native`, answered from the running [`super::Balancer`].

use std::sync::Arc;

use axum::Router;

use super::ApiState;

pub(crate) fn routes() -> Router<Arc<ApiState>> {
    Router::new()
}
