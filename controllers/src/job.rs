//! Placeholder for the job loop (being written).

/// Run the loop forever.
pub async fn run(_client: kube::Client) {}
