//! The Redshift half run once: `kinesync setup` and `kinesync merge --once`.

use super::pipeline::Pipeline;

impl Pipeline {
    pub async fn setup(&self) {
        self.run_ok(&["setup"]).await;
    }

    pub async fn merge_once(&self) -> String {
        self.run_ok(&["merge", "--once"]).await
    }
}
