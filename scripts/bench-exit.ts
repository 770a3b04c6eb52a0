/** The bench's floor for a short command: a compiled binary that only exits. */
process.exit(0);
