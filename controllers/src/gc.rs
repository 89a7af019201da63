//! Placeholder for the gc loop (being written).

/// Run the loop forever.
pub async fn run(_client: kube::Client) {}
