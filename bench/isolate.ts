// The workerd process that runs a Worker under wrangler's dev server, and its own address, past the
// dev proxy in front of it (which costs as much CPU per request as the Worker itself and is no part
// of a deployed Worker). Linux only (reads /proc).
import { readFileSync, readdirSync, readlinkSync } from "node:fs";
import type { WranglerDev } from "../test/support/wrangler-dev";

/**
 * The workerd running the Worker, and its own HTTP address: of the dev server's two workerd processes,
 * the one that does not hold wrangler's proxy port.
 */
export async function isolateOf(server: WranglerDev): Promise<{ pid: number; url: string }> {
  for (const pid of workerdPids(server.pid)) {
    const ports = listeningPorts(pid);
    if (ports.includes(server.port)) continue;
    for (const port of ports) {
      const url = `http://127.0.0.1:${port}`;
      const ok = await fetch(`${url}/healthz`).then(
        (res) => res.ok,
        () => false,
      );
      if (ok) return { pid, url };
    }
  }
  throw new Error("no workerd of the dev server answers /healthz besides its proxy");
}

function workerdPids(groupLeader: number): number[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .flatMap((entry) => {
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
        const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
        const pgrp = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
        return comm === "workerd" && pgrp === groupLeader ? [Number(entry)] : [];
      } catch {
        return [];
      }
    });
}

/** TCP ports a process listens on (its socket inodes, found in /proc/net/tcp in state LISTEN). */
function listeningPorts(pid: number): number[] {
  const inodes = new Set(
    readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
      try {
        const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        return match ? [match[1]!] : [];
      } catch {
        return [];
      }
    }),
  );
  return readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields[3] === "0A" && inodes.has(fields[9]!))
    .map((fields) => parseInt(fields[1]!.split(":")[1]!, 16));
}

/**
 * Nanoseconds of CPU a process's threads have run (the first field of each thread's schedstat): the
 * kernel's own accounting, so time spent waiting for a core on a busy machine does not count, and
 * finer than the 10 ms ticks of /proc/<pid>/stat. workerd's threads live as long as the process.
 */
export function cpuNanoseconds(pid: number): number {
  let total = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      total += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, "utf8").split(" ")[0]);
    } catch {
      // a thread that exited meanwhile
    }
  }
  return total;
}
