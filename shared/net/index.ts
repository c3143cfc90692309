// Network state the daemons own, as data applied once: links and addresses through `ip`,
// iptables/ip6tables rules in our chains through `*tables-restore --noflush`.
export { parseCidr, type Cidr } from './cidr.ts';
export {
  DEFAULT_NET_TOOLS,
  findNetTools,
  netToolList,
  type NetDeps,
  type NetTools,
} from './tools.ts';
export {
  applyIpPlan,
  cleanupLinks,
  parseIpAddr,
  planLinks,
  planLinksCleanup,
  readLinks,
  renderIpPlan,
  syncLinks,
  type AddressSpec,
  type CurrentLink,
  type DesiredLinks,
  type IpArgs,
  type LinkSpec,
} from './links.ts';
export {
  applyRestoreDocs,
  canonicalRule,
  cleanupRules,
  parseSave,
  planRules,
  planRulesCleanup,
  readRules,
  syncRules,
  tablesOf,
  tokenize,
  type Family,
  type OwnedChain,
  type RestoreDoc,
  type RuleTable,
  type SavedTable,
  type TableName,
} from './rules.ts';
