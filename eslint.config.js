// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import path from 'node:path';
import process from 'node:process';

/**
 * Import boundaries of DESIGN.md, as a local rule:
 * - `node:child_process` only inside shared/exec/ (every process goes through the audited runner);
 * - `daemons/<a>` never imports `daemons/<b>` (what two daemons need lives in shared/).
 */
const boundaries = {
  meta: {
    type: 'problem',
    schema: [],
    messages: {
      childProcess:
        'node:child_process is only imported inside shared/exec/: take a Runner from shared/exec instead',
      crossDaemon:
        'daemons/{{from}} imports daemons/{{to}}: daemons never import each other, move the shared part to shared/',
    },
  },
  /** @param {import('eslint').Rule.RuleContext} context */
  create(context) {
    const file = path.relative(process.cwd(), context.filename).split(path.sep).join('/');
    const ownDaemon = /^daemons\/([^/]+)\//.exec(file)?.[1];
    /** @param {import('estree').Node} node @param {unknown} source */
    const check = (node, source) => {
      if (typeof source !== 'string') return;
      if (
        (source === 'node:child_process' || source === 'child_process') &&
        !file.startsWith('shared/exec/')
      ) {
        context.report({ node, messageId: 'childProcess' });
      }
      if (ownDaemon !== undefined && source.startsWith('.')) {
        const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), source));
        const other = /^daemons\/([^/]+)\//.exec(target)?.[1];
        if (other !== undefined && other !== ownDaemon) {
          context.report({ node, messageId: 'crossDaemon', data: { from: ownDaemon, to: other } });
        }
      }
    };
    return {
      ImportDeclaration: (node) => check(node, node.source.value),
      ImportExpression: (node) =>
        check(node, node.source.type === 'Literal' ? node.source.value : undefined),
      ExportAllDeclaration: (node) => check(node, node.source.value),
      ExportNamedDeclaration: (node) => check(node, node.source?.value),
    };
  },
};

export default tseslint.config(
  {
    ignores: [
      'node_modules/',
      'dist/',
      'shared/proto/generated/',
      'daemons/webterminal/ui/vendor/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { hostplane: { rules: { boundaries } } },
    rules: {
      'hostplane/boundaries': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        { allowNumber: true, allowBoolean: true, allowNullish: true },
      ],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  {
    files: ['**/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      // node:test's describe/it return promises that the runner itself awaits
      '@typescript-eslint/no-floating-promises': 'off',
    },
  },
);
