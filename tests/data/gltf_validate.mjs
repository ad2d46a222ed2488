// Validate one GLB with the Khronos glTF-Validator (npm package gltf-validator) and print its issue counts and
// messages as JSON: {"errors": n, "warnings": n, "messages": ["<severity> <code> <message> <pointer>", ...]}.
// Usage: GLTF_VALIDATOR_MODULES=<a node_modules folder holding gltf-validator> node gltf_validate.mjs FILE.glb
import { readFileSync } from 'fs';
import { createRequire } from 'module';

const require = createRequire(process.env.GLTF_VALIDATOR_MODULES + '/');
const validator = require('gltf-validator');
const report = await validator.validateBytes(new Uint8Array(readFileSync(process.argv[2])), { maxIssues: 100 });
const issues = report.issues;
console.log(JSON.stringify({
  errors: issues.numErrors,
  warnings: issues.numWarnings,
  messages: issues.messages.map((m) => `${m.severity} ${m.code} ${m.message} ${m.pointer || ''}`),
}));
