// foundationd: wiring only (STYLE.md "Thin binary, real libraries").
#include "daemon/cli.hpp"

int main(int argc, char** argv) { return foundationd::daemon::runCli(argc, argv); }
