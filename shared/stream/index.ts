// Exec stream building blocks shared by the CLI, the exec daemons and the web terminal.
export * from './tokens.ts';
export * from './v5.ts';
