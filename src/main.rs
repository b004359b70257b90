fn main() {
    std::process::exit(apitune::cli::main());
}
