// The API reference, rendered here from /openapi.json (the OpenAPI 3.1 description the test
// suite checks against the live server): every operation with its authentication, its
// parameters, its request bodies and its answers, with the contract's error codes.

import { $, fromTemplate, h } from '../ui.js';

let description = null;

/** The server's API description, fetched once per page load. */
export function apiDescription() {
  description ??= fetch('/openapi.json').then((answer) => {
    if (!answer.ok) throw new Error(`/openapi.json: HTTP ${answer.status}`);
    return answer.json();
  });
  return description;
}

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

export function mount(main) {
  main.append(fromTemplate('page-reference'));
  apiDescription().then((doc) => render(main, doc)).catch((error) => {
    $('#reference-intro', main).textContent = error.message;
  });
}

function render(main, doc) {
  $('#reference-intro', main).replaceChildren(...prose(`${doc.info.title} ${doc.info.version}. ${doc.info.description ?? ''}`));
  const body = $('#reference-body', main);
  const toc = $('#reference-toc', main);
  const sections = [];
  body.append(authSection(doc));
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHODS.filter((m) => item[m])) {
      const section = operationSection(doc, path, method, item[method]);
      sections.push(section);
      body.append(section);
      toc.append(h('li', { 'data-for': section.id },
        h('a', { href: `#/reference`, 'data-target': section.id }, `${method.toUpperCase()} ${path}`)));
    }
  }
  // Links inside a hash-routed page: scroll to the section instead of changing the route.
  toc.addEventListener('click', (event) => {
    const target = event.target.closest('a')?.dataset.target;
    if (!target) return;
    event.preventDefault();
    const section = document.getElementById(target);
    section.scrollIntoView();
    section.querySelector('h2').focus();
  });
  $('#reference-filter', main).addEventListener('input', (event) => {
    const words = event.target.value.trim().toLowerCase();
    for (const section of sections) {
      const shown = !words || section.textContent.toLowerCase().includes(words);
      section.hidden = !shown;
      toc.querySelector(`[data-for="${section.id}"]`).hidden = !shown;
    }
  });
}

function authSection(doc) {
  const schemes = Object.entries(doc.components?.securitySchemes ?? {});
  return h('section', { class: 'card' }, h('h2', {}, 'Authentication'),
    h('dl', { class: 'plain' }, ...schemes.flatMap(([name, scheme]) => [
      h('dt', {}, name), h('dd', {}, ...prose(scheme.description ?? ''))])));
}

function operationSection(doc, path, method, operation) {
  const id = `op-${method}-${path.replace(/[^a-z0-9]+/gi, '-')}`;
  const heading = h('h2', { tabindex: '-1' }, h('span', { class: `method ${method}` }, method.toUpperCase()), ' ', h('code', {}, path));
  return h('section', { class: 'card operation', id },
    heading,
    h('p', {}, h('strong', {}, operation.summary ?? '')),
    operation.description ? h('p', {}, ...prose(operation.description)) : null,
    h('p', { class: 'hint' }, 'Authentication: ', authText(doc, operation)),
    parametersTable(doc, operation.parameters ?? []),
    requestBody(doc, operation.requestBody),
    responsesTable(doc, operation.responses ?? {}));
}

function authText(doc, operation) {
  const security = operation.security ?? doc.security ?? [];
  if (security.length === 0 || security.every((entry) => Object.keys(entry).length === 0)) return 'none';
  return security.map((entry) => Object.keys(entry).join(' + ')).join(' or ');
}

function parametersTable(doc, parameters) {
  if (parameters.length === 0) return null;
  return h('div', { class: 'scroll' }, h('table', {},
    h('caption', {}, 'Parameters'),
    h('thead', {}, h('tr', {}, ...['Name', 'In', 'Type', 'Required', 'Meaning'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, ...parameters.map((ref) => {
      const parameter = resolve(doc, ref);
      return h('tr', {}, h('td', {}, h('code', {}, parameter.name)), h('td', {}, parameter.in),
        h('td', {}, typeText(doc, parameter.schema)), h('td', {}, parameter.required ? 'yes' : 'no'),
        h('td', {}, ...prose(parameter.description ?? '')));
    }))));
}

function requestBody(doc, ref) {
  if (!ref) return null;
  const body = resolve(doc, ref);
  return h('div', {}, h('h3', {}, `Request body${body.required ? '' : ' (optional)'}`),
    body.description ? h('p', {}, ...prose(body.description)) : null,
    ...Object.entries(body.content ?? {}).map(([mediaType, content]) =>
      h('div', {}, h('p', {}, h('code', {}, mediaType)), fieldsTable(doc, content.schema))));
}

/** The properties of an object schema as a table (name, type, required, meaning). */
function fieldsTable(doc, schemaRef) {
  const schema = merged(doc, schemaRef);
  const properties = Object.entries(schema.properties ?? {});
  if (properties.length === 0) return h('p', { class: 'hint' }, typeText(doc, schemaRef));
  const required = new Set(schema.required ?? []);
  return h('div', { class: 'scroll' }, h('table', {},
    h('thead', {}, h('tr', {}, ...['Field', 'Type', 'Required', 'Meaning'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, ...properties.map(([name, property]) => {
      const resolved = resolve(doc, property);
      return h('tr', {}, h('td', {}, h('code', {}, name)), h('td', {}, typeText(doc, property)),
        h('td', {}, required.has(name) ? 'yes' : 'no'), h('td', {}, ...prose(resolved.description ?? '')));
    }))));
}

function responsesTable(doc, responses) {
  return h('div', {}, h('h3', {}, 'Answers'), h('div', { class: 'scroll' }, h('table', {},
    h('thead', {}, h('tr', {}, ...['HTTP', 'Codes', 'Meaning'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, ...Object.entries(responses).map(([status, ref]) => {
      const response = resolve(doc, ref);
      const json = response.content?.['application/json']?.schema;
      return h('tr', {}, h('td', {}, status), h('td', {}, codesText(doc, json)),
        h('td', {}, ...prose(response.description ?? ''), json ? dataDetails(doc, json) : null));
    })))));
}

/** The contract codes an answer may carry (its schema's `code` enum or const). */
function codesText(doc, schemaRef) {
  if (!schemaRef) return '–';
  const code = resolve(doc, merged(doc, schemaRef).properties?.code ?? {});
  if (code.const !== undefined) return String(code.const);
  return code.enum ? code.enum.join(', ') : '–';
}

/** A success answer's `data` fields, folded away. */
function dataDetails(doc, schemaRef) {
  const data = merged(doc, schemaRef).properties?.data;
  if (!data || Object.keys(merged(doc, data).properties ?? {}).length === 0) return null;
  return h('details', {}, h('summary', {}, 'data'), fieldsTable(doc, data));
}

function typeText(doc, schemaRef) {
  if (!schemaRef) return '';
  const schema = resolve(doc, schemaRef);
  if (schema.oneOf || schema.anyOf) return (schema.oneOf ?? schema.anyOf).map((s) => typeText(doc, s)).join(' | ');
  if (schema.allOf) {
    // The folded schema keeps no `allOf` of its own, or this would call itself for ever
    // (a schema whose `allOf` only holds `if`/`then` rules folds to itself).
    const { allOf: _parts, ...folded } = merged(doc, schema);
    return typeText(doc, folded);
  }
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(' | ');
  const type = Array.isArray(schema.type) ? schema.type.join(' | ') : schema.type ?? 'any';
  if (type === 'array') return `array of ${typeText(doc, schema.items)}`;
  return schema.format ? `${type} (${schema.format})` : type;
}

/** A `$ref` followed (within this document). */
function resolve(doc, value) {
  let current = value;
  for (let hops = 0; current?.$ref && hops < 16; hops += 1) {
    current = current.$ref.replace(/^#\//, '').split('/').reduce((node, key) => node?.[key], doc);
  }
  return current ?? {};
}

/** An object schema with its `allOf` parts folded into one (properties and required). */
function merged(doc, value) {
  const schema = resolve(doc, value);
  if (!schema.allOf) return schema;
  const parts = schema.allOf.map((part) => merged(doc, part));
  return {
    ...schema,
    properties: Object.assign({}, ...parts.map((part) => part.properties ?? {}), schema.properties ?? {}),
    required: parts.flatMap((part) => part.required ?? []).concat(schema.required ?? []),
  };
}

/** Text with `code` spans, as nodes (no HTML from the document is ever parsed). */
function prose(text) {
  return String(text).split('`').map((piece, index) => (index % 2 ? h('code', {}, piece) : piece));
}
