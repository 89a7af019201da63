//! Controllers (scheduler, Job, garbage collector): they talk to the API only, through kube's client. Filled by the controllers issue.
