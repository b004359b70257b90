fn main() {
    apitune::tune_allocator();
    std::process::exit(apitune::cli::main());
}
