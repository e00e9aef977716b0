// PID 1 of a rootless lab: it only keeps the lab's user, network, mount and PID namespaces alive. When it
// exits (SIGTERM from `qnet down`, or killed), the kernel ends every process inside, and the lab is gone.

// As PID 1 of its namespace, signals without a handler never reach it: SIGTERM must have one.
for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(sig, () => process.exit(0));
setInterval(() => {}, 2 ** 30);
