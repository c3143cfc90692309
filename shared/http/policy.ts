// Exec authorization from TOML: `[[policy]]` rules, each naming who (users and/or groups) may exec
// into which namespaces and machines. Anything no rule allows is denied.
import { z } from 'zod';
import type { Identity } from './identity.ts';

const names = z.array(z.string().min(1));

/** One `[[policy]]` table. `"*"` matches any namespace or machine. */
export const policyRuleSchema = z
  .strictObject({
    users: names.default([]),
    groups: names.default([]),
    namespaces: names.min(1).default(['*']),
    machines: names.min(1).default(['*']),
  })
  .refine((r) => r.users.length + r.groups.length > 0, {
    message: 'a policy rule needs users or groups',
  });
export type PolicyRule = z.output<typeof policyRuleSchema>;

/** Whether some rule lets `id` exec into machine `namespace/name`. */
export function isAllowed(
  rules: readonly PolicyRule[],
  id: Identity,
  namespace: string,
  name: string,
): boolean {
  const match = (list: readonly string[], v: string): boolean =>
    list.includes('*') || list.includes(v);
  return rules.some(
    (r) =>
      (r.users.includes(id.user) || id.groups.some((g) => r.groups.includes(g))) &&
      match(r.namespaces, namespace) &&
      match(r.machines, name),
  );
}
