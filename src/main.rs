fn main() {
    std::process::exit(cookbook::cli::main());
}
