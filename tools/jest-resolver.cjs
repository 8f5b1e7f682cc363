// Jest resolves with the `require` condition. Some ESM-only dependencies (execa's helpers) export only `import`
// entries; Jest transforms them to CommonJS anyway, so fall back to the `import` condition when `require` finds nothing.
module.exports = (request, options) => {
  try {
    return options.defaultResolver(request, options);
  } catch (err) {
    if (!options.conditions || options.conditions.includes('import')) throw err;
    return options.defaultResolver(request, {
      ...options,
      conditions: ['import', ...options.conditions.filter((c) => c !== 'require')],
    });
  }
};
