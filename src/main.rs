fn main() {
    apitune::tune_allocator();
    apitune::quiet_on_closed_pipe();
    std::process::exit(apitune::cli::main());
}
