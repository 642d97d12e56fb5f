// Preact + htm: components written as tagged templates, no build step.
import { h, render, Fragment, cloneElement } from "preact";
import { useState, useEffect, useMemo, useRef, useCallback } from "preact/hooks";
import htm from "htm";

export const html = htm.bind(h);
export { h, render, Fragment, cloneElement, useState, useEffect, useMemo, useRef, useCallback };
