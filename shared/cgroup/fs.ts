import { constants } from 'node:fs';
import { access, mkdir, readFile, readdir, rmdir, writeFile } from 'node:fs/promises';

/** The file operations shared/cgroup needs; tests pass one over a temp root. */
export interface CgroupFs {
  readFile(p: string): Promise<string>;
  /** one write of `data` to an existing file (cgroupfs parses each write as one command). */
  writeFile(p: string, data: string): Promise<void>;
  /** creates the directory and missing parents; no error when it exists. */
  mkdir(p: string): Promise<void>;
  rmdir(p: string): Promise<void>;
  exists(p: string): Promise<boolean>;
  /** names of the entries of a directory; used to walk child cgroups when present. */
  readdir?(p: string): Promise<string[]>;
}

/** cgroupfs through node:fs/promises. */
export const nodeCgroupFs: CgroupFs = {
  readFile: (p) => readFile(p, 'utf8'),
  // No O_CREAT: a missing controller file must fail with ENOENT instead of being created (on a
  // temp root) or failing with EACCES (kernfs). No O_RDWR either: cgroup.kill is write-only.
  writeFile: (p, data) => writeFile(p, data, { flag: constants.O_WRONLY | constants.O_TRUNC }),
  mkdir: async (p) => {
    await mkdir(p, { recursive: true });
  },
  rmdir: (p) => rmdir(p),
  exists: async (p) => {
    try {
      await access(p);
      return true;
    } catch {
      return false;
    }
  },
  readdir: async (p) => {
    const entries = await readdir(p, { withFileTypes: true });
    return entries.filter((e) => e.isDirectory()).map((e) => e.name);
  },
};
