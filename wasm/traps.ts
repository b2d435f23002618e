// Exceptions the host raises *on purpose* to unwind a running callback. Host functions swallow
// every other exception (they return a status instead); these must propagate.

export class VmAbort extends Error {
  constructor(message: string) {
    super(message);
    this.name = "VmAbort";
  }
}

/** The callback ran past its time budget (thrown from the budget check the host inserted). */
export class BudgetExceeded extends VmAbort {
  constructor(budgetMs: number) {
    super(`callback exceeded its ${budgetMs} ms CPU-time budget`);
    this.name = "BudgetExceeded";
  }
}

/** WASI proc_exit: the module asked to stop (AssemblyScript's abort path ends here). */
export class ProcExit extends VmAbort {
  constructor(readonly exitCode: number) {
    super(`module called proc_exit(${exitCode})`);
    this.name = "ProcExit";
  }
}

/** AssemblyScript `env.abort` (modules built without `--use abort=abort_proc_exit`). */
export class ModuleAbort extends VmAbort {
  constructor(message: string) {
    super(message);
    this.name = "ModuleAbort";
  }
}
