use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = alertflow::cli::Cli::parse();
    if let Err(e) = alertflow::cli::main(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
