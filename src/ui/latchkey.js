// latchkey's own script: passkeys (WebAuthn). Served at /assets/latchkey.js under a CSP
// without 'unsafe-inline'; every page it enhances works without it (the passkey controls
// stay hidden when the browser cannot use passkeys).
//
// The options come from latchkey as JSON (fetch, the page's CSRF token in X-CSRF-Token);
// the browser's answer goes back as an ordinary form POST, so the server decides what the
// browser sees next (a sign-in's redirect, the recovery codes of a first passkey).
(function () {
  'use strict';

  if (!window.PublicKeyCredential || !navigator.credentials) {
    return;
  }

  function toBytes(b64url) {
    var b64 = b64url.replace(/-/g, '+').replace(/_/g, '/');
    while (b64.length % 4) {
      b64 += '=';
    }
    var bin = atob(b64);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) {
      out[i] = bin.charCodeAt(i);
    }
    return out.buffer;
  }

  function toB64url(buf) {
    var bytes = new Uint8Array(buf);
    var bin = '';
    for (var i = 0; i < bytes.length; i++) {
      bin += String.fromCharCode(bytes[i]);
    }
    return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function field(form, name) {
    var input = form && form.querySelector('input[name="' + name + '"]');
    return input ? input.value : '';
  }

  function say(message) {
    var status = document.getElementById('passkey-status');
    if (status) {
      status.textContent = message;
      status.hidden = !message;
    }
  }

  // Why a ceremony did not happen, in words (the browser's DOMException names).
  function explain(err) {
    if (!err) {
      return '';
    }
    if (err.name === 'NotAllowedError' || err.name === 'AbortError') {
      return 'No passkey was used. Try again, or sign in another way.';
    }
    if (err.name === 'InvalidStateError') {
      return 'This device has a passkey for your account already.';
    }
    if (err.name === 'SecurityError') {
      return 'Passkeys do not work at this address. Open latchkey at its own address.';
    }
    return err.message || 'Something went wrong. Try again.';
  }

  // POST JSON to latchkey; resolves with the JSON answer. An answer asking to sign in again
  // first navigates there.
  function options(url, csrf, body) {
    return fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
      body: JSON.stringify(body || {})
    }).then(function (resp) {
      // An answer that is not latchkey's JSON (a proxy's error page) reads as no message.
      return resp.json().catch(function () {
        return {};
      }).then(function (json) {
        if (resp.ok) {
          return json.publicKey;
        }
        if (json.redirect) {
          window.location.assign(json.redirect);
        }
        throw new Error(json.message || 'latchkey refused the request.');
      });
    });
  }

  // Posts fields as a form (the page navigates to the answer).
  function post(action, fields) {
    var form = document.createElement('form');
    form.method = 'post';
    form.action = action;
    form.hidden = true;
    Object.keys(fields).forEach(function (name) {
      var input = document.createElement('input');
      input.type = 'hidden';
      input.name = name;
      input.value = fields[name];
      form.appendChild(input);
    });
    document.body.appendChild(form);
    form.submit();
  }

  function creationOptions(o) {
    o.challenge = toBytes(o.challenge);
    o.user.id = toBytes(o.user.id);
    (o.excludeCredentials || []).forEach(function (c) {
      c.id = toBytes(c.id);
    });
    return o;
  }

  function requestOptions(o) {
    o.challenge = toBytes(o.challenge);
    (o.allowCredentials || []).forEach(function (c) {
      c.id = toBytes(c.id);
    });
    return o;
  }

  function registrationJSON(cred) {
    var r = cred.response;
    return JSON.stringify({
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        clientDataJSON: toB64url(r.clientDataJSON),
        attestationObject: toB64url(r.attestationObject),
        transports: r.getTransports ? r.getTransports() : []
      }
    });
  }

  function assertionJSON(cred) {
    var r = cred.response;
    return JSON.stringify({
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        clientDataJSON: toB64url(r.clientDataJSON),
        authenticatorData: toB64url(r.authenticatorData),
        signature: toB64url(r.signature),
        userHandle: r.userHandle ? toB64url(r.userHandle) : null
      }
    });
  }

  // Adding a passkey on /account/passkeys.
  function setUpRegistration(form) {
    var unsupported = document.getElementById('passkey-unsupported');
    if (unsupported) {
      unsupported.hidden = true;
    }
    form.hidden = false;
    var busy = false;
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      if (busy) {
        return;
      }
      busy = true;
      say('');
      var csrf = field(form, 'csrf');
      options('/webauthn/register/options', csrf)
        .then(function (o) {
          return navigator.credentials.create({ publicKey: creationOptions(o) });
        })
        .then(function (cred) {
          post(form.action, {
            csrf: csrf,
            name: field(form, 'name'),
            return_to: field(form, 'return_to'),
            rd: field(form, 'rd'),
            credential: registrationJSON(cred)
          });
        })
        .catch(function (err) {
          busy = false;
          say(explain(err));
        });
    });
  }

  // Signing in with a passkey: usernameless on /login, the second factor on
  // /login/second-factor. On /login a conditional request runs too (the browser offers
  // passkeys in the username field's autofill) where the browser supports it.
  function setUpSignIn(button) {
    var purpose = button.getAttribute('data-webauthn');
    var form = button.form || document.querySelector('form');
    var box = document.getElementById('passkey-sign-in-box');
    if (box) {
      box.hidden = false;
    }
    var pending = null;

    function finish(cred) {
      post('/login/passkey', {
        csrf: field(form, 'csrf'),
        purpose: purpose,
        return_to: field(form, 'return_to'),
        rd: field(form, 'rd'),
        credential: assertionJSON(cred)
      });
    }

    function ask(mediation) {
      if (pending) {
        pending.abort();
      }
      var controller = new AbortController();
      pending = controller;
      return options('/webauthn/authenticate/options', field(form, 'csrf'), { purpose: purpose })
        .then(function (o) {
          var request = { publicKey: requestOptions(o), signal: controller.signal };
          if (mediation) {
            request.mediation = mediation;
          }
          return navigator.credentials.get(request);
        })
        .then(function (cred) {
          if (cred) {
            finish(cred);
          }
        });
    }

    // The username field's autofill (conditional mediation), where the browser has it.
    // Errors of the silent request are not the user's doing: nothing to say, and it is not
    // asked again (a browser that refuses it at once would refuse it in a loop).
    var conditional = purpose === 'sign-in' && PublicKeyCredential.isConditionalMediationAvailable;
    function arm() {
      if (!conditional) {
        return;
      }
      PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
        if (available) {
          ask('conditional').catch(function () {});
        }
      });
    }

    button.addEventListener('click', function () {
      say('');
      var mine;
      ask(null).catch(function (err) {
        // A newer press (or the autofill) took over: its outcome is the one to show.
        if (pending !== mine) {
          return;
        }
        say(explain(err));
        // The button's request is over: offer the passkeys in the autofill again.
        pending = null;
        arm();
      });
      mine = pending;
    });

    arm();
  }

  var add = document.getElementById('passkey-add');
  if (add) {
    setUpRegistration(add);
  }
  var signIn = document.querySelector('[data-webauthn="sign-in"], [data-webauthn="second-factor"]');
  if (signIn) {
    setUpSignIn(signIn);
  }
})();
