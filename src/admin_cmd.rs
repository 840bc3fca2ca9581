//! Placeholder: replaced by the module's owner.

#[derive(clap::Args)]
pub struct UserArgs {}
#[derive(clap::Args)]
pub struct PointsArgs {}
#[derive(clap::Args)]
pub struct LedgerArgs {}

pub fn run_user(_args: UserArgs) -> i32 {
    2
}
pub fn run_points(_args: PointsArgs) -> i32 {
    2
}
pub fn run_ledger(_args: LedgerArgs) -> i32 {
    2
}
