//! The admin page `/admin/webhook-deliveries` (being built: see issue 5).

use axum::Router;

/// Routes of the admin page (static assets; the page calls the JSON API with the user's token).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
}
